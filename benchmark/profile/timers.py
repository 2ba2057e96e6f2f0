"""Step timing that is honest on asynchronous devices: synchronise before every clock read."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import numpy as np
import torch

# MMBENCH_SYNC_DEBUG=warn|error: inside every timed step on a GPU, torch warns about (or refuses) any call that makes
# the host wait for the device — how a method's author finds the synchronisation the row's step_syncs counted.
SYNC_DEBUG_VARIABLE = "MMBENCH_SYNC_DEBUG"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synchronize_compute(device: torch.device) -> None:
    """Wait for the work queued on the compute (current) stream, and only that: a copy of the next batch running on
    a side stream is overlapped work, not this step's."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


@contextlib.contextmanager
def sync_debug(device: torch.device) -> Iterator[None]:
    """Within the block, CUDA synchronisations warn or raise as MMBENCH_SYNC_DEBUG says (nothing when unset)."""
    mode = os.environ.get(SYNC_DEBUG_VARIABLE, "")
    if device.type != "cuda" or mode not in ("warn", "error"):
        yield
        return
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


class StepClock:
    """Times one region: synchronise the compute stream, read perf_counter, run, synchronise, read again."""

    def __init__(self, device: torch.device):
        self.device = device
        self._start = 0.0

    def __enter__(self) -> StepClock:
        synchronize_compute(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        synchronize_compute(self.device)
        self.elapsed_ms = (time.perf_counter() - self._start) * 1000.0


def summarize_ms(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"median": None, "p10": None, "p90": None}
    values = np.asarray(samples, dtype=np.float64)
    return {
        "median": float(np.median(values)),
        "p10": float(np.percentile(values, 10)),
        "p90": float(np.percentile(values, 90)),
    }


def single_epoch_without_warmup(epoch_s: float, warmup_ms: list[float], median_step_ms: float | None) -> float:
    """The epoch time of a run with one epoch, its warm-up steps costed at the median measured step.

    With a single epoch there is no later epoch free of warm-up to report, so the warm-up steps'
    measured time (compilation, allocator growth) is swapped for what a steady step costs; their
    data loading stays in. Without measured steps there is nothing to swap with.
    """
    if median_step_ms is None or not warmup_ms:
        return epoch_s
    return epoch_s - sum(warmup_ms) / 1000.0 + len(warmup_ms) * median_step_ms / 1000.0
