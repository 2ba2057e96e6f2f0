"""NVML: a background sampler of this process's and the device's used memory, and the energy counter.

Every reading is None (never 0) where NVML cannot tell: no driver, no such query, or a
process list that does not show our PID (containers with a separate PID namespace).

The torch device is matched to its NVML handle by UUID, whole GPU or MIG slice. A device that
cannot be matched gets no handle and no device-wide figure, with the reason on the row: falling
back to index 0 would describe another device. On a MIG slice the energy counter belongs to the
whole physical GPU (every slice), so energy is not recorded there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from benchmark.profile.sampling import PeriodicSampler


@dataclass(frozen=True)
class NvmlDevice:
    """The NVML view of one torch device: `handle` is None when it could not be identified (`match` says why)."""

    nvml: Any
    handle: Any
    match: str  # "gpu", "mig", or "unresolved: <reason>"

    @property
    def resolved(self) -> bool:
        return self.handle is not None

    @property
    def energy_available(self) -> bool:
        return self.resolved and self.match == "gpu"


def open_nvml() -> Any:
    """pynvml, initialised; None without a driver or the library (no GPU to read)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - any failure means "NVML unavailable", which is a valid answer
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_gpus(nvml: Any) -> list[tuple[int, str, str, int]]:
    """(NVML index, UUID, name, memory bytes) of every GPU, in NVML's (PCI bus) order."""
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
        gpus.append((index, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)), memory))
    return gpus


def _bare(uuid: str) -> str:
    for prefix in ("GPU-", "MIG-"):
        if uuid.startswith(prefix):
            return uuid[len(prefix) :]
    return uuid


def resolve_nvml_device(nvml: Any, torch_uuid: str) -> NvmlDevice:
    """Find the NVML handle whose UUID is torch's: a whole GPU (`GPU-…`) or a MIG slice (`MIG-…`)."""
    wanted = _bare(torch_uuid)
    for prefix, kind in (("GPU-", "gpu"), ("MIG-", "mig")):
        try:
            return NvmlDevice(nvml, nvml.nvmlDeviceGetHandleByUUID(prefix + wanted), kind)
        except Exception:  # noqa: BLE001 - not this kind of UUID; try the next
            continue
    # Some drivers resolve MIG UUIDs only by walking the slices of each GPU.
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception as error:  # noqa: BLE001
        return NvmlDevice(nvml, None, f"unresolved: NVML cannot list devices ({error})")
    for index in range(count):
        try:
            parent = nvml.nvmlDeviceGetHandleByIndex(index)
            if _bare(_text(nvml.nvmlDeviceGetUUID(parent))) == wanted:
                return NvmlDevice(nvml, parent, "gpu")
            slots = nvml.nvmlDeviceGetMaxMigDeviceCount(parent)
        except Exception:  # noqa: BLE001 - a GPU without MIG support has no slices to search
            continue
        for slot in range(slots):
            try:
                handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
                if _bare(_text(nvml.nvmlDeviceGetUUID(handle))) == wanted:
                    return NvmlDevice(nvml, handle, "mig")
            except Exception:  # noqa: BLE001 - an empty slot
                continue
    return NvmlDevice(nvml, None, f"unresolved: no NVML device or MIG slice has torch's UUID {torch_uuid}")


def nvml_device_for_torch(device_index: int = 0) -> NvmlDevice:
    """The NVML view of torch's CUDA device (CUDA_VISIBLE_DEVICES renumbers devices; UUIDs do not change)."""
    nvml = open_nvml()
    if nvml is None:
        return NvmlDevice(None, None, "unresolved: NVML is not available")
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
    except Exception as error:  # noqa: BLE001
        return NvmlDevice(nvml, None, f"unresolved: torch gives no UUID for cuda:{device_index} ({error})")
    return resolve_nvml_device(nvml, uuid)


def running_processes(nvml: Any, handle: Any) -> list[Any] | None:
    try:
        return list(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except Exception:  # noqa: BLE001
        return None


def process_used_bytes(nvml: Any, handle: Any, pid: int) -> int | None:
    for process in running_processes(nvml, handle) or []:
        if process.pid == pid and process.usedGpuMemory is not None:
            return int(process.usedGpuMemory)
    return None


def device_used_bytes(nvml: Any, handle: Any) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:  # noqa: BLE001
        return None


def energy_millijoules(nvml: Any, handle: Any) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception:  # noqa: BLE001
        return None


class NvmlSampler(PeriodicSampler):
    """This process's and the whole device's used memory, and other processes on the device, sampled at `hz`."""

    def __init__(self, nvml: Any, handle: Any, hz: float = 200.0, pid: int | None = None):
        super().__init__(hz)
        self.nvml, self.handle = nvml, handle
        self.pid = pid or os.getpid()
        self.process_peak_bytes: int | None = None
        self.device_peak_bytes: int | None = None
        self.other_pids: set[int] = set()

    @property
    def available(self) -> bool:
        return self.nvml is not None and self.handle is not None

    def sample_once(self) -> None:
        processes = running_processes(self.nvml, self.handle)
        device = device_used_bytes(self.nvml, self.handle)
        for process in processes or []:
            if process.pid == self.pid:
                if process.usedGpuMemory is not None:
                    self.process_peak_bytes = max(self.process_peak_bytes or 0, int(process.usedGpuMemory))
            else:
                self.other_pids.add(int(process.pid))
        if device is not None:
            self.device_peak_bytes = max(self.device_peak_bytes or 0, device)
