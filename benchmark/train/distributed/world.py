"""The ranks of a distributed cell: who this process is (torchrun's environment), its device, and the process
group, started with the cell's collective timeout so that a rank that hangs ends the cell instead of stalling it.

The group is never destroyed: a rank's process ends with it (launch/cell_main.py). Destroying it while the DDP
module that used it is still alive (a reference cycle frees the module later) hung one rank's exit in three on
torch 2.13 with gloo, and the cell with it."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from benchmark.suite.config import TrainConfig

# What torchrun sets in every rank's environment.
RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This rank of a distributed cell."""

    rank: int
    size: int
    local_rank: int
    strategy: str  # ddp | fsdp
    backend: str  # gloo | nccl

    @property
    def leader(self) -> bool:
        """Rank 0: it reports progress and writes the row."""
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank} of {self.size}"


def launched_rank() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when torchrun started this process, else None."""
    if not all(name in os.environ for name in RANK_VARIABLES):
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])


def backend_for(train: TrainConfig, device: torch.device) -> str:
    if train.dist_backend != "auto":
        return train.dist_backend
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """The rank's own device: on CUDA the local rank's GPU (of those CUDA_VISIBLE_DEVICES shows), else `device`."""
    if device.type != "cuda":
        return device
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def start_world(train: TrainConfig, device: torch.device, strategy: str) -> World | None:
    """Join the cell's process group when the cell is distributed and torchrun started this process (else None);
    `strategy`: the one the cell's method trains under (`Method.distributed_strategy`)."""
    launched = launched_rank()
    if train.distributed == "none" or launched is None:
        return None
    rank, size, local_rank = launched
    backend = backend_for(train, device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=train.dist_timeout_s))
    return World(rank, size, local_rank, strategy, backend)
