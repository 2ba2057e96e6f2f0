"""Where a cell's static memory goes: weights (trainable and frozen), gradients and optimizer state, in bytes,
counted from the tensors themselves (each storage once) rather than derived from parameter counts."""

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
            total += tensor.numel() * tensor.element_size()
    return total


def static_memory(model: nn.Module, optimizer: torch.optim.Optimizer) -> StaticMemory:
    """Call after an optimizer step: the gradients and the optimizer's state exist then."""
    parameters = list({id(p): p for p in model.parameters()}.values())
    trainable = [p for p in parameters if p.requires_grad]
    frozen = [p for p in parameters if not p.requires_grad]
    gradients = [p.grad for p in trainable if p.grad is not None]
    state = [value for per_parameter in optimizer.state.values() for value in per_parameter.values()]
    return StaticMemory(
        weights_trainable_bytes=_bytes(trainable),
        weights_frozen_bytes=_bytes(frozen),
        gradient_bytes=_bytes(gradients),
        optimizer_state_bytes=_bytes([value for value in state if isinstance(value, torch.Tensor)]),
    )
