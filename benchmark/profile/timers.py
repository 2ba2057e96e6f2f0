"""Step timing that is honest on asynchronous devices: synchronise before every clock read."""

from __future__ import annotations

import time

import numpy as np
import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Times one region: synchronise, read perf_counter, run, synchronise, read again."""

    def __init__(self, device: torch.device):
        self.device = device
        self._start = 0.0

    def __enter__(self) -> StepClock:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        synchronize(self.device)
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
