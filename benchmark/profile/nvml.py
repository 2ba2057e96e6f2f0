"""NVML: a background sampler of this process's and the device's used memory, and the energy counter.

Every reading is None (never 0) where NVML cannot tell: no driver, no such query, or a
process list that does not show our PID (containers with a separate PID namespace).
"""

from __future__ import annotations

import os

from benchmark.profile.sampling import PeriodicSampler

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


class NvmlSampler(PeriodicSampler):
    """This process's and the whole device's used memory, sampled at `hz` in a background thread."""

    def __init__(self, nvml, handle, hz: float = 200.0, pid: int | None = None):
        super().__init__(hz)
        self.nvml, self.handle = nvml, handle
        self.pid = pid or os.getpid()
        self.process_peak_bytes: int | None = None
        self.device_peak_bytes: int | None = None

    @property
    def available(self) -> bool:
        return self.nvml is not None and self.handle is not None

    def sample_once(self) -> None:
        process = process_used_bytes(self.nvml, self.handle, self.pid)
        device = device_used_bytes(self.nvml, self.handle)
        if process is not None:
            self.process_peak_bytes = max(self.process_peak_bytes or 0, process)
        if device is not None:
            self.device_peak_bytes = max(self.device_peak_bytes or 0, device)
