"""The collectives a distributed step and evaluation need, beyond what DDP and FSDP do themselves."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

# torch 2.13 renamed the single-tensor collectives (the old names warn); older torch has only the old ones.
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter_single = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


class _GatherRows(torch.autograd.Function):
    """Every rank's rows, concatenated in rank order; the backward hands each rank the gradient of its own rows
    summed over the ranks (every rank computed the loss from all rows)."""

    @staticmethod
    def forward(ctx: Any, part: torch.Tensor) -> torch.Tensor:
        size = dist.get_world_size()
        part = part.contiguous()
        gathered = part.new_empty((part.shape[0] * size, *part.shape[1:]))
        _all_gather_single(gathered, part)
        return gathered

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> torch.Tensor:
        size = dist.get_world_size()
        gradient = gradient.contiguous()
        mine = gradient.new_empty((gradient.shape[0] // size, *gradient.shape[1:]))
        _reduce_scatter_single(mine, gradient)
        return mine


def gather_rows(part: torch.Tensor) -> torch.Tensor:
    """All ranks' `part` [n, ...] as [n x ranks, ...] (equal n on every rank), gradients flowing back to each."""
    if not part.requires_grad:
        return gather_rows_plain(part)
    gathered: torch.Tensor = _GatherRows.apply(part)  # type: ignore[no-untyped-call]  # torch leaves it untyped
    return gathered


def gather_rows_plain(part: torch.Tensor) -> torch.Tensor:
    """All ranks' `part` concatenated in rank order, without gradients (labels, masks, evaluation results)."""
    part = part.contiguous()
    if part.dtype == torch.bool:  # not every backend reduces or gathers booleans
        return gather_rows_plain(part.to(torch.uint8)).bool()
    gathered = part.new_empty((part.shape[0] * dist.get_world_size(), *part.shape[1:]))
    _all_gather_single(gathered, part)
    return gathered


def share(count: int, rank: int, size: int) -> slice:
    """Rank `rank`'s contiguous share of `count` things split into `size` equal shares (the last ones may be short
    or empty when `count` does not divide)."""
    per_rank = -(-count // size)
    return slice(min(rank * per_rank, count), min((rank + 1) * per_rank, count))


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value` (picklable), in rank order, on every rank."""
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values
