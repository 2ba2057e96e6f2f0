"""A distributed cell's figures from all its ranks, put together on every rank once training has ended (each call
is a collective: every rank makes it, at the same point, only after training succeeded everywhere).

Step and epoch times are each step's slowest rank's (a step ends for the cell when its last rank ends); memory is
the largest rank's peak, with every rank's kept; energy is summed over the ranks' GPUs (null if any rank has no
counter)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from benchmark.profile.step_timing import StepTiming
from benchmark.results.pieces import Energy, RankFigures, TrainingMemory
from benchmark.train.distributed.collectives import gather_objects
from benchmark.train.distributed.world import World


def slowest_rank_timing(timing: StepTiming) -> list[float | None]:
    """Replace `timing`'s step, warm-up and epoch times by each one's slowest rank's; every rank's own median step."""
    ranks = gather_objects((timing.step_ms, timing.warmup_ms, timing.epoch_samples))
    timing.step_ms = [max(values) for values in zip(*(rank[0] for rank in ranks), strict=True)]
    timing.warmup_ms = [max(values) for values in zip(*(rank[1] for rank in ranks), strict=True)]
    timing.epoch_samples = [max(values) for values in zip(*(rank[2] for rank in ranks), strict=True)]
    return [float(np.median(rank[0])) if rank[0] else None for rank in ranks]


def _largest(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def device_label(device: torch.device) -> str:
    """A rank's device as the row names it: `cuda:1 NVIDIA H100 80GB HBM3`, or `cpu`."""
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


def merged_rank_figures(
    world: World,
    memory: TrainingMemory,
    energy: Energy,
    step_medians: list[float | None],
    device: torch.device,
    comm_share: float | None,
) -> tuple[TrainingMemory, Energy, RankFigures]:
    """This rank's training memory and energy, merged with every other rank's; the collectives' share of a step's
    kernel time averaged over the ranks that have one."""
    ranks = gather_objects((memory, energy, device_label(device), comm_share))
    shares = [rank[3] for rank in ranks if rank[3] is not None]
    memories: list[TrainingMemory] = [rank[0] for rank in ranks]
    energies: list[Energy] = [rank[1] for rank in ranks]
    largest = {
        name: _largest([getattr(rank, name) for rank in memories])
        for name in (
            "torch_peak_alloc_gib",
            "torch_peak_reserved_gib",
            "cpu_peak_rss_gib",
            "nvml_peak_process_gib",
            "nvml_peak_device_gib",
            "peak_mem_gib",
        )
    }
    merged_memory = dataclasses.replace(memory, **largest)  # type: ignore[arg-type]  # all of them float | None
    joules = [rank.energy_j_measured for rank in energies]
    merged_energy = Energy(None if any(value is None for value in joules) else sum(value or 0.0 for value in joules))
    figures = RankFigures(
        distributed=world.strategy,
        dist_backend=world.backend,
        rank_devices=json.dumps([rank[2] for rank in ranks]),
        rank_peak_mem_gib=[rank.peak_mem_gib for rank in memories],
        rank_torch_peak_alloc_gib=[rank.torch_peak_alloc_gib for rank in memories],
        rank_step_ms_median=step_medians,
        comm_share=sum(shares) / len(shares) if shares else None,
    )
    return merged_memory, merged_energy, figures
