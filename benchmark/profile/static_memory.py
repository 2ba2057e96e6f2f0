"""Where a cell's static memory goes: weights (trainable and frozen), gradients and optimizer state, in bytes,
counted from the tensors themselves (each storage once) rather than derived from parameter counts.

A quantized weight (bitsandbytes, `base_precision`) counts at its real size: its packed integers (4-bit values two
to a byte, or int8) and the quantization state it needs to compute (block scales, the scales of those scales under
double quantization, the code book; an int8 weight's row scales)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchmark.results.pieces import StaticMemory


def _bytes(tensors: Sequence[torch.Tensor]) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        key = id(tensor)
        if key not in seen:
            seen.add(key)
            held = local_tensor(tensor)  # an FSDP-sharded parameter counts what this rank holds
            total += held.numel() * held.element_size()
    return total


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """What this rank holds of `tensor`: an FSDP-sharded parameter's (a DTensor's) local shard, any other tensor
    itself."""
    to_local = getattr(tensor, "to_local", None)
    local: torch.Tensor = to_local() if callable(to_local) else tensor
    return local


def _quantization_state(module: nn.Module) -> list[torch.Tensor]:
    """The tensors beside a bitsandbytes layer's packed weight: a 4-bit weight's state through bitsandbytes' own
    serialisation of it (`QuantState.as_dict`), an int8 weight's row scales (`SCB`, which the layer's matmul state
    takes over at its first forward); nothing for any other module."""
    weight = getattr(module, "weight", None)
    state = getattr(weight, "quant_state", None)
    found = (
        [value for value in state.as_dict(packed=False).values() if isinstance(value, torch.Tensor)] if state else []
    )
    for owner in (weight, getattr(module, "state", None)):
        row_scales = getattr(owner, "SCB", None)
        if isinstance(row_scales, torch.Tensor):
            found.append(row_scales)
    return found


def static_memory(model: nn.Module, optimizer: torch.optim.Optimizer) -> StaticMemory:
    """Call after an optimizer step: the gradients and the optimizer's state exist then."""
    parameters = list({id(p): p for p in model.parameters()}.values())
    trainable = [p for p in parameters if p.requires_grad]
    frozen = [p for p in parameters if not p.requires_grad]
    gradients = [p.grad for p in trainable if p.grad is not None]
    state = [value for per_parameter in optimizer.state.values() for value in per_parameter.values()]
    return StaticMemory(
        weights_trainable_bytes=_bytes(trainable),
        weights_frozen_bytes=_bytes(
            frozen + [tensor for module in model.modules() for tensor in _quantization_state(module)]
        ),
        gradient_bytes=_bytes(gradients),
        optimizer_state_bytes=_bytes([value for value in state if isinstance(value, torch.Tensor)]),
    )
