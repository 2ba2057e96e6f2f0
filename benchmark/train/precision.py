"""Mixed precision: autocast context and gradient scaling per precision and device."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def autocast_factory(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[None]]:
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = DTYPES[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    # fp16 gradients underflow without scaling; bf16 has fp32's range and needs none.
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def resolve_device(requested: str) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("the suite asks for device 'cuda' but torch sees no CUDA GPU")
        return torch.device("cuda", 0)
    return torch.device("cpu")
