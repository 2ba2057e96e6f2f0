"""Memory and energy over the training phase only: evaluation in between is paused out."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.profile.memory import GIB, RssSampler, choose_peak_memory, reset_torch_peaks, torch_peaks_gib
from benchmark.profile.nvml import NvmlSampler, energy_millijoules
from benchmark.profile.timers import synchronize


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class TrainingProfiler:
    def __init__(self, device: torch.device, nvml: Any, handle: Any, nvml_hz: float):
        self.device = device
        self.nvml, self.handle = nvml, handle
        self.nvml_sampler = NvmlSampler(nvml, handle, hz=nvml_hz)
        self.rss_sampler = RssSampler()
        self.torch_alloc_gib: float | None = None
        self.torch_reserved_gib: float | None = None
        self.energy_mj = 0
        self._energy_since: int | None = None
        self.energy_measuring = False

    def start(self) -> None:
        reset_torch_peaks(self.device)
        self.rss_sampler.start()
        self.nvml_sampler.start()

    def _read_energy(self) -> int | None:
        if self.handle is None:
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
        """Before evaluation: its memory and energy are not training's."""
        self._close_energy_segment()
        self._fold_torch_peaks()
        self.nvml_sampler.pause()
        self.rss_sampler.pause()

    def resume(self) -> None:
        reset_torch_peaks(self.device)
        self.nvml_sampler.resume()
        self.rss_sampler.resume()
        if self.energy_measuring:
            self._energy_since = self._read_energy()

    def stop(self) -> dict[str, Any]:
        """The memory and energy columns of the row."""
        self._close_energy_segment()
        self._fold_torch_peaks()
        self.nvml_sampler.stop()
        self.rss_sampler.stop()
        nvml = self.nvml_sampler
        columns = {
            "torch_peak_alloc_gib": self.torch_alloc_gib, "torch_peak_reserved_gib": self.torch_reserved_gib,
            "cpu_peak_rss_gib": self.rss_sampler.peak_bytes / GIB,
            "nvml_peak_process_gib": nvml.process_peak_bytes / GIB if nvml.process_peak_bytes is not None else None,
            "nvml_peak_device_gib": nvml.device_peak_bytes / GIB if nvml.device_peak_bytes is not None else None,
            "nvml_samples": nvml.samples if nvml.available else None, "nvml_hz": nvml.achieved_hz if nvml.available else None,
            "energy_j_measured": self.energy_mj / 1000.0 if self.energy_measuring else None,
        }
        columns["peak_mem_gib"], columns["peak_mem_source"] = choose_peak_memory(
            columns["nvml_peak_process_gib"], self.torch_reserved_gib, columns["cpu_peak_rss_gib"] if self.device.type == "cpu" else None)
        return columns
