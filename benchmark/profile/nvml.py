"""NVML: a background sampler of this process's and the device's used memory, and the energy counter.

Every reading is None (never 0) where NVML cannot tell: no driver, no such query, or a
process list that does not show our PID (containers with a separate PID namespace).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

GIB = 1024**3


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - any failure means "NVML unavailable", which is a valid answer
        return None


def nvml_handle_for_torch_device(device_index: int = 0):
    """The NVML handle of torch's CUDA device (CUDA_VISIBLE_DEVICES renumbers; NVML does not), or None."""
    nvml = _nvml()
    if nvml is None:
        return None, None
    try:
        import torch

        uuid = "GPU-" + str(torch.cuda.get_device_properties(device_index).uuid)
        return nvml, nvml.nvmlDeviceGetHandleByUUID(uuid)
    except Exception:  # noqa: BLE001
        try:
            return nvml, nvml.nvmlDeviceGetHandleByIndex(device_index)
        except Exception:  # noqa: BLE001
            return None, None


def process_used_bytes(nvml, handle, pid: int) -> int | None:
    try:
        processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:  # noqa: BLE001
        return None
    for process in processes:
        if process.pid == pid and process.usedGpuMemory is not None:
            return int(process.usedGpuMemory)
    return None


def device_used_bytes(nvml, handle) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:  # noqa: BLE001
        return None


def energy_millijoules(nvml, handle) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception:  # noqa: BLE001
        return None


@dataclass
class NvmlPeaks:
    process_peak_bytes: int | None = None
    device_peak_bytes: int | None = None
    samples: int = 0
    achieved_hz: float | None = None
    process_samples_bytes: list[int] = field(default_factory=list)


class NvmlSampler:
    """Samples at `hz` in a daemon thread between start() and stop()."""

    def __init__(self, nvml, handle, hz: float = 200.0, pid: int | None = None):
        self.nvml, self.handle, self.interval = nvml, handle, 1.0 / hz
        self.pid = pid or os.getpid()
        self.peaks = NvmlPeaks()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0

    @property
    def available(self) -> bool:
        return self.nvml is not None and self.handle is not None

    def sample_once(self) -> None:
        process = process_used_bytes(self.nvml, self.handle, self.pid)
        device = device_used_bytes(self.nvml, self.handle)
        peaks = self.peaks
        if process is not None:
            peaks.process_peak_bytes = max(peaks.process_peak_bytes or 0, process)
        if device is not None:
            peaks.device_peak_bytes = max(peaks.device_peak_bytes or 0, device)
        peaks.samples += 1

    def _run(self) -> None:
        next_time = time.perf_counter()
        while not self._stop.is_set():
            self.sample_once()
            next_time += self.interval
            delay = next_time - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_time = time.perf_counter()

    def start(self) -> None:
        if not self.available:
            return
        self._started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> NvmlPeaks:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.sample_once()  # the final state counts too
            elapsed = time.perf_counter() - self._started_at
            self.peaks.achieved_hz = self.peaks.samples / elapsed if elapsed > 0 else None
        return self.peaks
