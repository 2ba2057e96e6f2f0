"""A plain PyTorch training loop for every method mmbench measures, written from the methods' descriptions.

It is the yardstick of mmbench's harness overhead (`make bench-overhead`): the same towers, method, side network,
user encoder, loss, optimizer, precision and shapes as one mmbench cell, in the simplest loop a researcher would
write — random data of the cell's shapes, a batch copied to the device inside each step, `synchronize` around every
step. It and the modules that build its model (plain_model.py, plain_towers.py) import nothing else of mmbench —
not its methods, trainer, data or profiler: a bug or an overhead there cannot hide in both sides of the comparison.
It reads the cell's JSON (a plain dict) and the shipped tower configs (JSON files).

Covered: fft, lora, adapter, bitfit, iisan(_cached), iisan_versa(_cached) on towers of one width and depth (where
IISAN-Versa is IISAN), crossan(_cached); encoder towers (BERT, ViT); static step shapes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from bench.overhead.plain_model import DTYPES, PlainModel, SideEncoder, build_model


def host_data(cell: dict[str, Any], shape: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Random item features of the cell's shapes (row 0: padding), in pinned host memory where there is a GPU."""
    items = int(cell["dataset"].get("options", {}).get("items", 1000))
    generator = torch.Generator().manual_seed(cell["seed"])
    if shape["cached"]:
        states = (items + 1, shape["blocks"], shape["width"])
        data = {k: torch.randn(states, generator=generator).half() for k in ("text_states", "image_states")}
    else:
        tokens = shape["tokens"]
        lengths = torch.randint(2, tokens + 1, (items + 1,), generator=generator)
        data = {
            "ids": torch.randint(1000, shape["vocab"], (items + 1, tokens), generator=generator),
            "mask": (torch.arange(tokens).unsqueeze(0) < lengths.unsqueeze(1)).long(),
            "pixels": torch.randint(
                0, 256, (items + 1, 3, shape["image_size"], shape["image_size"]), generator=generator, dtype=torch.uint8
            ),
        }
    data["items"] = torch.tensor(items)
    return data


def batches(
    cell: dict[str, Any], data: dict[str, torch.Tensor], pinned: bool
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Endless random batches of full sequences: [B, L+1] item ids and the features of every position."""
    train = cell["train"]
    items = int(data["items"])
    generator = torch.Generator().manual_seed(cell["seed"] + 1)
    while True:
        sequences = torch.randint(1, items + 1, (train["batch_size"], train["max_seq_len"] + 1), generator=generator)
        flat = sequences.reshape(-1)
        features = {k: v[flat] for k, v in data.items() if k != "items"}
        if pinned:
            sequences, features = sequences.pin_memory(), {k: v.pin_memory() for k, v in features.items()}
        yield sequences, features


def run(
    cell: dict[str, Any],
    device: torch.device,
    warmup: int,
    steps: int,
    around_step: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None,
) -> dict[str, Any]:
    """Train `warmup + steps` steps; time the last `steps`. `around_step(i)` wraps step i (e.g. an operator count)."""
    model, shape = build_model(cell)
    model.to(device).train()
    if isinstance(model.item_encoder, SideEncoder) and model.item_encoder.towers is not None:
        model.item_encoder.towers.eval()
    train = cell["train"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train["lr"], weight_decay=train["weight_decay"], fused=True)
    step = _training_step(model, optimizer, train["precision"], device, shape)
    source = batches(cell, host_data(cell, shape), device.type == "cuda")

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step_ms: list[float] = []
    losses: list[float] = []
    for index in range(warmup + steps):
        sequences, features = next(source)
        with around_step(index) if around_step is not None else contextlib.nullcontext():
            synchronize()
            started = time.perf_counter()
            loss = step(sequences, features)
            synchronize()
            elapsed = (time.perf_counter() - started) * 1000.0
        losses.append(float(loss.detach()))  # after the step's count and clock: reading the loss waits for the device
        if index >= warmup:
            step_ms.append(elapsed)
    return {
        "method": cell["method"]["name"],
        "trainable_params": sum(p.numel() for p in trainable),
        "step_ms": step_ms,
        "losses": losses,
        "finite": all(math.isfinite(value) for value in losses),
    }


def _training_step(
    model: PlainModel, optimizer: torch.optim.Optimizer, precision: str, device: torch.device, shape: dict[str, Any]
) -> Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]:
    """One training step as a researcher writes it: the batch copied to the device, pixels normalised there, forward
    under autocast, backward (through a gradient scaler for fp16 on CUDA), optimizer step; returns the loss."""
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
    mean = torch.tensor(shape["image_mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(shape["image_std"], device=device).view(1, 3, 1, 1)

    def step(sequences: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        sequences = sequences.to(device, non_blocking=True)
        inputs = {k: v.to(device, non_blocking=True) for k, v in features.items()}
        if "pixels" in inputs:
            inputs["pixels"] = (inputs["pixels"].float() / 255.0 - mean) / std
        with torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32"):
            loss: torch.Tensor = model(sequences, inputs)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimizer.step()
        return loss

    return step
