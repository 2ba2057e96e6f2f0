"""Host-memory peak (the CPU fallback) and torch's CUDA allocator peaks."""

from __future__ import annotations

import os

import psutil
import torch

from benchmark.profile.sampling import PeriodicSampler
from benchmark.units import GIB


class RssSampler(PeriodicSampler):
    """Peak resident set size of this process, sampled in a background thread."""

    def __init__(self, hz: float = 100.0):
        super().__init__(hz)
        self.process = psutil.Process(os.getpid())
        self.peak_bytes = 0

    def sample_once(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self.process.memory_info().rss)


def reset_torch_peaks(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def release_device_memory(device: torch.device) -> None:
    """Hand the allocator's cached blocks back (after evaluation), so the next training peak is training's own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def torch_peaks_gib(device: torch.device) -> tuple[float | None, float | None]:
    """(max allocated, max reserved) in GiB since the last reset; None off CUDA."""
    if device.type != "cuda":
        return None, None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / GIB, torch.cuda.max_memory_reserved(device) / GIB


def choose_peak_memory(
    nvml_process_gib: float | None, torch_reserved_gib: float | None, cpu_rss_gib: float | None
) -> tuple[float | None, str]:
    """The figure TPME uses, and where it came from (DESIGN.md: NVML process, else torch reserved, else CPU RSS)."""
    if nvml_process_gib is not None:
        return nvml_process_gib, "nvml_process"
    if torch_reserved_gib is not None:
        return torch_reserved_gib, "torch_reserved"
    if cpu_rss_gib is not None:
        return cpu_rss_gib, "cpu_rss"
    return None, "none"
