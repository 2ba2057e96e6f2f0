"""Evaluation split over the ranks of a distributed cell: each rank encodes its share of the catalogue and ranks its
share of the users, and every rank gathers the whole result, so evaluation runs once (not once per rank) and every
rank ends with the same metrics. Each share is padded to the same length (its last entry repeated), so every rank
calls the model as often as the others: under FSDP every call is a collective."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.train.distributed.collectives import gather_rows_plain, share
from benchmark.train.distributed.world import World


@dataclass(frozen=True)
class RankShare:
    indices: np.ndarray  # positions this rank computes, padded to the same length on every rank
    counts: list[int]  # how many of each rank's positions are real

    @property
    def per_rank(self) -> int:
        return len(self.indices)


def rank_share(count: int, world: World | None) -> RankShare:
    """The positions 0..count-1 this rank computes (all of them without a world)."""
    if world is None:
        return RankShare(np.arange(count), [count])
    slices = [share(count, rank, world.size) for rank in range(world.size)]
    counts = [part.stop - part.start for part in slices]
    per_rank = max(-(-count // world.size), 1)
    mine = np.arange(slices[world.rank].start, slices[world.rank].stop)
    padding = np.full(per_rank - len(mine), mine[-1] if len(mine) else 0)
    return RankShare(np.concatenate([mine, padding]).astype(np.int64), counts)


def gather_share(values: torch.Tensor, positions: RankShare, world: World | None, device: torch.device) -> torch.Tensor:
    """Every rank's `values` [per_rank, ...] put together in position order [count, ...], on every rank (on `values`'
    device). Collectives run where the backend does: nccl on the GPU, gloo on the host."""
    if world is None:
        return values
    home = values.device
    where = device if world.backend == "nccl" else torch.device("cpu")
    gathered = gather_rows_plain(values.to(where)).to(home)
    per_rank = positions.per_rank
    return torch.cat([gathered[rank * per_rank : rank * per_rank + real] for rank, real in enumerate(positions.counts)])
