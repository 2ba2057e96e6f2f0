"""The devices an estimate is priced against: a table of common GPUs (memory, memory bandwidth, and the dense
compute peaks of profile/peaks.py), this machine's CPU, or any memory size the user names.

Memory is the total NVML reports for the card (what `nvidia-smi` shows, a little under the marketed size); bandwidth
is the datasheet's. A device outside the table can still be named by its memory (`--memory GIB`): whether a cell fits
is then known, its time is not (no peaks to price it with).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass

from benchmark.profile.nvml import nvml_gpus, open_nvml
from benchmark.profile.peaks import PeakEntry, find_peak
from benchmark.units import GIB


@dataclass(frozen=True)
class DeviceSpec:
    label: str
    kind: str  # "cuda" | "cpu"
    memory_bytes: int
    bandwidth_bytes_per_s: float | None  # None: unknown (time needs a calibration)
    peak: PeakEntry | None  # dense FLOP/s peaks; None: unknown

    def flops_per_s(self, precision: str, tf32: bool = False) -> float | None:
        if self.peak is None:
            return None
        if precision in ("bf16", "fp16"):
            return self.peak.bf16 * 1e12
        return (self.peak.tf32 if tf32 else self.peak.fp32) * 1e12


@dataclass(frozen=True)
class _Card:
    pattern: str
    label: str
    memory_mib: int  # NVML total
    bandwidth_gb_s: float  # datasheet


# Order matters as in profile/peaks.py: the first match wins.
CARDS: tuple[_Card, ...] = (
    _Card(r"\bRTX 4090\b|\b4090\b", "GeForce RTX 4090", 24564, 1008.0),
    _Card(r"\bA100\b.*\b40\s*GB\b|\bA100-40", "A100 40GB", 40960, 1555.0),
    _Card(r"\bL40S\b", "L40S", 46068, 864.0),
    _Card(r"\bA100\b", "A100 80GB", 81920, 2039.0),
    _Card(r"\bH100\b.*\bNVL\b", "H100 NVL", 95830, 3900.0),
    _Card(r"\bH100\b.*\bPCIe\b", "H100 PCIe", 81559, 2000.0),
    _Card(r"\bH100\b", "H100 SXM", 81559, 3350.0),
    _Card(r"\bH200\b.*\bNVL\b", "H200 NVL", 143771, 4800.0),
    _Card(r"\bH200\b", "H200 SXM", 143771, 4800.0),
)
# The short table `mmbench estimate` answers "does it fit" for when no device is named: 24, 40, 48, 80, 141 GB.
COMMON = ("GeForce RTX 4090", "A100 40GB", "L40S", "H100 SXM", "H200 SXM")


def _spec(card: _Card) -> DeviceSpec:
    return DeviceSpec(card.label, "cuda", card.memory_mib * 2**20, card.bandwidth_gb_s * 1e9, find_peak(card.label))


def find_card(name: str) -> DeviceSpec | None:
    """The table's card for a device name (an NVML name, or a user's "h100", "A100 40GB"); None if unknown."""
    card = next((card for card in CARDS if re.search(card.pattern, name, re.IGNORECASE)), None)
    return _spec(card) if card is not None else None


def common_cards() -> list[DeviceSpec]:
    return [_spec(card) for label in COMMON for card in CARDS if card.label == label]


def card_names() -> list[str]:
    return [card.label for card in CARDS]


def memory_only(gib: float) -> DeviceSpec:
    """A device known by its memory alone."""
    return DeviceSpec(f"{gib:g} GiB GPU", "cuda", int(gib * GIB), None, None)


def cpu_label(host: str) -> str:
    """How a CPU is named in estimates and calibrations: by its host (rows record it), since CPUs are not tabled."""
    return f"cpu {host}"


def this_cpu() -> DeviceSpec:
    """This machine's CPU: its memory (its rates are nominal: time_model.cpu_throughput)."""
    import socket

    import psutil

    return DeviceSpec(cpu_label(socket.gethostname()), "cpu", psutil.virtual_memory().total, None, None)


def _selected(gpus: list[tuple[int, str, str, int]], visible: str | None) -> list[tuple[str, int]]:
    """The GPUs a CUDA process here may use, in CUDA's order: those CUDA_VISIBLE_DEVICES names (NVML indices or
    UUIDs, in its order), else all of them."""
    if visible is None:
        return [(name, memory) for _, _, name, memory in gpus]
    chosen = []
    for entry in (part.strip() for part in visible.split(",") if part.strip()):
        match = [gpu for gpu in gpus if str(gpu[0]) == entry or gpu[1] == entry or gpu[1].startswith(entry)]
        if not match:
            break  # CUDA stops at the first entry it cannot resolve
        chosen.append((match[0][2], match[0][3]))
    return chosen


def visible_gpus() -> list[tuple[str, int]]:
    """(name, memory bytes) of each GPU a CUDA process here may use (CUDA_VISIBLE_DEVICES respected), read through
    NVML without a CUDA context; [] without NVML or a GPU. The first is what device `cuda` means to a cell."""
    nvml = open_nvml()
    if nvml is None:
        return []
    try:
        return _selected(nvml_gpus(nvml), os.environ.get("CUDA_VISIBLE_DEVICES"))
    except nvml.NVMLError:  # NVML errors mean the devices cannot be told
        return []
    finally:
        with contextlib.suppress(nvml.NVMLError):  # shutting NVML down again changes nothing we read
            nvml.nvmlShutdown()


def gpu_spec(name: str, memory_bytes: int) -> DeviceSpec:
    """A GPU by its name: the table's card, else one known by its memory alone (named as it is)."""
    return find_card(name) or DeviceSpec(name, "cuda", memory_bytes, None, None)


def visible_gpu() -> tuple[str, int] | None:
    """(name, memory bytes) of the largest GPU a CUDA process here may use; None without one."""
    return max(visible_gpus(), key=lambda gpu: gpu[1], default=None)
