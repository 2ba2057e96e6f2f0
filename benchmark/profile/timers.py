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

    def __enter__(self) -> "StepClock":
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        synchronize(self.device)
        self.elapsed_ms = (time.perf_counter() - self._start) * 1000.0


def summarize_ms(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"median": None, "p10": None, "p90": None}
    values = np.asarray(samples, dtype=np.float64)
    return {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)), "p90": float(np.percentile(values, 90))}
