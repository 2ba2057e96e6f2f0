"""Peak memory of training and, apart from it, of evaluation: torch's allocator peaks, NVML's view of the process
and the device, and the process's resident set (the CPU fallback).

Evaluation's memory is its own: when an evaluation span ends, its cached allocator blocks are released and the peak
counters reset before training resumes, so full-ranking buffers never land in the next epoch's training peak.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from benchmark.profile.memory import (
    RssSampler,
    choose_peak_memory,
    release_device_memory,
    reset_torch_peaks,
    torch_peaks_gib,
)
from benchmark.profile.nvml import NvmlDevice, NvmlSampler
from benchmark.profile.tracker import Tracker
from benchmark.results.pieces import EvaluationMemory, TrainingMemory
from benchmark.units import GIB


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _gib(size: int | None) -> float | None:
    return size / GIB if size is not None else None


class MemoryTracker(Tracker[TrainingMemory]):
    """Training's peak memory; `pause`/`resume` leave the evaluation between epochs out."""

    def __init__(self, device: torch.device, nvml_device: NvmlDevice | None, nvml_hz: float):
        super().__init__()
        self.device = device
        nvml, handle = (nvml_device.nvml, nvml_device.handle) if nvml_device is not None else (None, None)
        self.nvml_sampler = NvmlSampler(nvml, handle, hz=nvml_hz)
        self.rss_sampler = RssSampler()
        self.torch_alloc_gib: float | None = None
        self.torch_reserved_gib: float | None = None

    def other_gpu_pids(self) -> set[int] | None:
        """Other processes NVML saw on this device so far (None without NVML): what contention reports."""
        return self.nvml_sampler.other_pids if self.nvml_sampler.available else None

    def _fold_torch_peaks(self) -> None:
        alloc, reserved = torch_peaks_gib(self.device)
        self.torch_alloc_gib = _max(self.torch_alloc_gib, alloc)
        self.torch_reserved_gib = _max(self.torch_reserved_gib, reserved)

    def start(self) -> None:
        reset_torch_peaks(self.device)
        self.rss_sampler.start()
        self.nvml_sampler.start()

    def pause(self) -> None:
        self._fold_torch_peaks()
        self.nvml_sampler.pause()
        self.rss_sampler.pause()

    def resume(self) -> None:
        # The torch peaks were reset by whatever ran in between (an evaluation span releases and resets them).
        self.nvml_sampler.resume()
        self.rss_sampler.resume()

    def stop(self) -> TrainingMemory:
        self._fold_torch_peaks()
        self.nvml_sampler.stop()
        self.rss_sampler.stop()
        nvml = self.nvml_sampler
        process_gib = _gib(nvml.process_peak_bytes)
        rss_gib = self.rss_sampler.peak_bytes / GIB
        peak, source = choose_peak_memory(
            process_gib, self.torch_reserved_gib, rss_gib if self.device.type == "cpu" else None
        )
        return TrainingMemory(
            torch_peak_alloc_gib=self.torch_alloc_gib,
            torch_peak_reserved_gib=self.torch_reserved_gib,
            cpu_peak_rss_gib=rss_gib,
            nvml_peak_process_gib=process_gib,
            nvml_peak_device_gib=_gib(nvml.device_peak_bytes),
            nvml_samples=nvml.samples if nvml.available else None,
            nvml_hz=nvml.achieved_hz if nvml.available else None,
            peak_mem_gib=peak,
            peak_mem_source=source,
        )


class EvaluationMemoryTracker:
    """Evaluation's peak memory over any number of evaluation spans (`with tracker.span(): ...`): the largest."""

    def __init__(self, device: torch.device):
        self.device = device
        self.alloc_gib: float | None = None
        self.reserved_gib: float | None = None
        self.rss_gib: float | None = None

    @contextlib.contextmanager
    def span(self) -> Iterator[None]:
        reset_torch_peaks(self.device)
        rss_sampler = RssSampler()
        rss_sampler.start()
        try:
            yield
        finally:
            alloc, reserved = torch_peaks_gib(self.device)
            self.alloc_gib, self.reserved_gib = _max(self.alloc_gib, alloc), _max(self.reserved_gib, reserved)
            rss_sampler.stop()
            self.rss_gib = _max(self.rss_gib, rss_sampler.peak_bytes / GIB)
            # What evaluation cached goes back before training resumes, and training's peak counts from here.
            release_device_memory(self.device)
            reset_torch_peaks(self.device)

    @property
    def measurement(self) -> EvaluationMemory:
        """The peaks of the spans that have ended (all None before the first one)."""
        return EvaluationMemory(self.alloc_gib, self.reserved_gib, self.rss_gib)
