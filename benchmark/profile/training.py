"""Memory, energy and contention over the training phase only: evaluation in between is paused out.

Evaluation gets its own peak (torch allocator, process RSS); when it ends, its cached allocator
blocks are released and the peak counters reset before training resumes, so full-ranking buffers
never land in the next epoch's training peak.
"""

from __future__ import annotations

import torch

from benchmark.profile.contention import ContentionMonitor
from benchmark.profile.memory import (
    RssSampler,
    choose_peak_memory,
    release_device_memory,
    reset_torch_peaks,
    torch_peaks_gib,
)
from benchmark.profile.nvml import NvmlDevice, NvmlSampler, energy_millijoules
from benchmark.profile.timers import synchronize
from benchmark.results.pieces import ContentionFigures, Energy, EvaluationMemory, TrainingMemory
from benchmark.units import GIB


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class EvaluationPeaks:
    """The peak memory of evaluation phases, kept apart from training's."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rss_sampler = RssSampler()
        self.alloc_gib: float | None = None
        self.reserved_gib: float | None = None

    def start(self) -> None:
        reset_torch_peaks(self.device)
        if not self.rss_sampler.started:
            self.rss_sampler.start()
        else:
            self.rss_sampler.resume()

    def stop(self) -> None:
        alloc, reserved = torch_peaks_gib(self.device)
        self.alloc_gib, self.reserved_gib = _max(self.alloc_gib, alloc), _max(self.reserved_gib, reserved)
        self.rss_sampler.pause()
        release_device_memory(self.device)
        reset_torch_peaks(self.device)

    def figures(self) -> EvaluationMemory:
        self.rss_sampler.stop()
        rss = self.rss_sampler.peak_bytes / GIB if self.rss_sampler.samples else None
        return EvaluationMemory(self.alloc_gib, self.reserved_gib, rss)


class TrainingProfiler:
    def __init__(self, device: torch.device, nvml_device: NvmlDevice | None, nvml_hz: float):
        self.device = device
        self.nvml_device = nvml_device
        nvml, handle = (nvml_device.nvml, nvml_device.handle) if nvml_device is not None else (None, None)
        self.nvml, self.handle = nvml, handle
        self.nvml_sampler = NvmlSampler(nvml, handle, hz=nvml_hz)
        self.rss_sampler = RssSampler()
        self.contention = ContentionMonitor()
        self.evaluation = EvaluationPeaks(device)
        self.torch_alloc_gib: float | None = None
        self.torch_reserved_gib: float | None = None
        self.energy_mj = 0
        self._energy_since: int | None = None
        self.energy_measuring = False

    def start(self) -> None:
        reset_torch_peaks(self.device)
        self.rss_sampler.start()
        self.nvml_sampler.start()
        self.contention.start()

    def _read_energy(self) -> int | None:
        # A MIG slice shares the physical GPU's counter with every other slice: not this cell's energy.
        if self.nvml_device is None or not self.nvml_device.energy_available:
            return None
        synchronize(self.device)
        return energy_millijoules(self.nvml, self.handle)

    def begin_energy(self) -> None:
        """Called before the first measured (post-warm-up) step."""
        self._energy_since = self._read_energy()
        self.energy_measuring = self._energy_since is not None  # no counter: energy stays null, never 0

    def _close_energy_segment(self) -> None:
        if self.energy_measuring and self._energy_since is not None:
            now = self._read_energy()
            if now is not None:
                self.energy_mj += now - self._energy_since
        self._energy_since = None

    def _fold_torch_peaks(self) -> None:
        alloc, reserved = torch_peaks_gib(self.device)
        self.torch_alloc_gib = _max(self.torch_alloc_gib, alloc)
        self.torch_reserved_gib = _max(self.torch_reserved_gib, reserved)

    def pause(self) -> None:
        """Before evaluation: its memory and energy are not training's; its own peak is measured from here."""
        self._close_energy_segment()
        self._fold_torch_peaks()
        self.nvml_sampler.pause()
        self.rss_sampler.pause()
        self.evaluation.start()

    def resume(self) -> None:
        """After evaluation: release what it allocated and reset the peaks before the next training step."""
        self.evaluation.stop()
        self.nvml_sampler.resume()
        self.rss_sampler.resume()
        if self.energy_measuring:
            self._energy_since = self._read_energy()

    def stop(self) -> tuple[TrainingMemory, Energy, ContentionFigures]:
        """The training phase's memory, energy and contention."""
        self._close_energy_segment()
        self._fold_torch_peaks()
        self.nvml_sampler.stop()
        self.rss_sampler.stop()
        nvml = self.nvml_sampler
        contention = self.contention.stop(
            nvml.other_pids if nvml.available else None, cpu_cell=self.device.type == "cpu"
        )
        process_gib = nvml.process_peak_bytes / GIB if nvml.process_peak_bytes is not None else None
        rss_gib = self.rss_sampler.peak_bytes / GIB
        peak, source = choose_peak_memory(
            process_gib, self.torch_reserved_gib, rss_gib if self.device.type == "cpu" else None
        )
        memory = TrainingMemory(
            torch_peak_alloc_gib=self.torch_alloc_gib,
            torch_peak_reserved_gib=self.torch_reserved_gib,
            cpu_peak_rss_gib=rss_gib,
            nvml_peak_process_gib=process_gib,
            nvml_peak_device_gib=nvml.device_peak_bytes / GIB if nvml.device_peak_bytes is not None else None,
            nvml_samples=nvml.samples if nvml.available else None,
            nvml_hz=nvml.achieved_hz if nvml.available else None,
            peak_mem_gib=peak,
            peak_mem_source=source,
        )
        energy = Energy(self.energy_mj / 1000.0 if self.energy_measuring else None)
        figures = ContentionFigures(
            contention.contended,
            contention.reason,
            contention.other_gpu_processes,
            contention.other_busy_cores,
            contention.load_avg_1m,
        )
        return memory, energy, figures
