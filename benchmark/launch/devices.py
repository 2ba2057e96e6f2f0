"""The GPUs a pool launcher fills: `--gpus all`, `--gpus 0,2` (NVML indices: PCI bus order, as nvidia-smi
numbers them) or `--gpus fake:3` (three stand-in devices for trying the pool without GPUs).

A cell is pinned to its device by `CUDA_VISIBLE_DEVICES=<GPU UUID>`: a UUID names the same GPU
whatever CUDA's own device order is, and the cell's NVML sampler resolves the device by that UUID,
so its memory and energy figures are that device's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark.errors import MMBenchError
from benchmark.launch.placement import ASSIGNED_DEVICE
from benchmark.profile import nvml as profile_nvml


class DeviceSelectionError(MMBenchError):
    """`--gpus` names devices this machine does not have."""


@dataclass(frozen=True)
class PoolDevice:
    label: str  # what progress lines and rows say: "gpu1 (NVIDIA H100 80GB HBM3)", "fake1"
    visible: str | None  # CUDA_VISIBLE_DEVICES of the cells it runs; None: the environment's (fake devices)
    lock_key: str  # the device-lock name: one timed cell per device across every mmbench run
    memory_gib: float | None = None  # its memory (NVML total); None: unknown (fake devices)
    others: tuple[PoolDevice, ...] = ()  # a gang's other devices: one distributed cell's ranks, one device each

    @property
    def lock_keys(self) -> tuple[str, ...]:
        return (self.lock_key, *(other.lock_key for other in self.others))

    @property
    def size(self) -> int:
        return 1 + len(self.others)

    @classmethod
    def gang(cls, devices: list[PoolDevice]) -> PoolDevice:
        """Several devices as one, for a distributed cell: every one of them visible to its ranks (rank r on the
        r-th), every one locked, its memory the smallest (each rank holds one device)."""
        first, *others = devices
        visible = [device.visible for device in devices]
        memories = [device.memory_gib for device in devices]
        return cls(
            " + ".join(device.label for device in devices),
            ",".join(v for v in visible if v is not None) if all(v is not None for v in visible) else None,
            first.lock_key,
            min(m for m in memories if m is not None) if all(m is not None for m in memories) else None,
            tuple(others),
        )

    @property
    def environment(self) -> dict[str, str]:
        extra = {ASSIGNED_DEVICE: self.label}
        if self.visible is not None:
            extra["CUDA_VISIBLE_DEVICES"] = self.visible
        return extra


def lock_name(visible: str) -> str:
    """A device-lock name for a visible-device string (an index or a GPU/MIG UUID)."""
    return "cuda-" + "".join(character if character.isalnum() or character in "-_" else "_" for character in visible)


def open_nvml() -> Any:
    """pynvml, initialised; None without a driver or the library (then there are no GPUs to pool)."""
    return profile_nvml.open_nvml()


def nvml_gpus(nvml: Any = None) -> list[tuple[int, str, str, int]]:
    """(NVML index, UUID, name, memory bytes) of every GPU, in NVML's (PCI bus) order; [] without NVML."""
    nvml = nvml if nvml is not None else open_nvml()
    return profile_nvml.nvml_gpus(nvml) if nvml is not None else []


def pool_devices(spec: str, nvml: Any = None) -> list[PoolDevice]:
    spec = spec.strip()
    if spec.startswith("fake:"):
        count = spec.removeprefix("fake:")
        if not count.isdigit() or int(count) < 1:
            raise DeviceSelectionError(f"--gpus {spec}: fake:N takes a positive number of stand-in devices")
        return [PoolDevice(f"fake{index}", None, f"fake-{index}") for index in range(int(count))]
    gpus = nvml_gpus(nvml)
    if not gpus:
        raise DeviceSelectionError(
            f"--gpus {spec}: NVML sees no GPU here (no NVIDIA driver?); `--gpus fake:N` tries the pool without GPUs"
        )
    if spec == "all":
        chosen = gpus
    else:
        by_index = {index: gpu for gpu in gpus for index in [gpu[0]]}
        try:
            indices = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise DeviceSelectionError(f"--gpus {spec}: expected 'all', 'fake:N' or NVML indices like 0,1,3") from None
        unknown = [index for index in indices if index not in by_index]
        if unknown or not indices or len(set(indices)) != len(indices):
            raise DeviceSelectionError(
                f"--gpus {spec}: this machine has GPUs {', '.join(str(g[0]) for g in gpus)} (NVML order); "
                "name each once"
            )
        chosen = [by_index[index] for index in indices]
    return [PoolDevice(f"gpu{index} ({name})", uuid, lock_name(uuid), memory) for index, uuid, name, memory in chosen]
