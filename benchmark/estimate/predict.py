"""A cell's prediction on one device: its memory in parts, whether it fits, and its step and epoch time.

The simulated step gives what torch allocates (weights, gradients, optimizer state, the batches on the device,
what autograd saves and what is transient at the peak); on a GPU, cuBLAS's workspace comes on top of it, the
caching allocator's slack (reserved over allocated) on top of that, and the CUDA context outside the allocator: the
last sum is what NVML shows for the process, the figure an out-of-memory is about. A cached method's hidden states
stay on the host (memory-mapped, one batch at a time to the device): nothing of the cache is resident on the device.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from benchmark.estimate.calibration import Calibration, DeviceCalibration
from benchmark.estimate.devices import DeviceSpec
from benchmark.estimate.simulated_step import SimulatedStep
from benchmark.estimate.time_model import Throughput
from benchmark.units import GIB, MIB

# A cell "does not fit" when its predicted process peak is above the device's memory by more than this share (a
# clear margin: the prediction's worst error is within it); within it, "tight".
CLEAR_MARGIN = 0.10
TIGHT_SHARE = 0.95
# A CPU cell's process beyond its tensors: ~0.37 GiB resident after its imports (torch, transformers, peft; Linux
# x86), and ~0.1 GiB more of data, allocator free lists and model building by the time it trains.
DEFAULT_CPU_RUNTIME_GIB = 0.45
HOPPER_WORKSPACE_MIB = 32.0
OLDER_WORKSPACE_MIB = 8.125
PART_NAMES = (
    "weights",
    "gradients",
    "optimizer",
    "inputs",
    "saved_activations",
    "transient",
    "workspace",
    "allocator_slack",
    "context",
    "cache_resident",
)
ALLOCATED_PARTS = PART_NAMES[:7]  # what torch's allocator hands out (max_memory_allocated counts them)


@dataclass(frozen=True)
class CellPrediction:
    cell_id: str
    method: str
    device: str
    parts: dict[str, int]  # bytes, PART_NAMES in order
    peak_allocated: int  # what torch.cuda.max_memory_allocated would report (CPU: the tensors' peak)
    peak_reserved: int | None  # torch.cuda.max_memory_reserved (None on a CPU)
    peak_process: int  # NVML's figure for the process (CPU: tensors + the runtime's resident memory)
    memory_bytes: int  # the device's
    step_s: float | None  # None: no rates for this device
    epoch_s: float | None
    steps_per_epoch: int
    trainable_params: int
    total_params: int
    calibration: str  # what calibrated it, or "defaults"
    time_source: str
    data_source: str  # read | predicted
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fits(self) -> str:
        """yes | tight | no (over the device's memory by a clear margin)."""
        if self.peak_process > self.memory_bytes * (1 + CLEAR_MARGIN):
            return "no"
        if self.peak_process > self.memory_bytes * TIGHT_SHARE:
            return "tight"
        return "yes"

    @property
    def peak_gib(self) -> float:
        return self.peak_process / GIB

    def row_columns(self) -> dict[str, Any]:
        """The prediction as a result row's predicted_* columns."""
        return {
            "predicted_on": self.device,
            "predicted_fits": self.fits,
            "predicted_peak_process_gib": self.peak_process / GIB,
            "predicted_peak_alloc_gib": self.peak_allocated / GIB,
            "predicted_peak_reserved_gib": self.peak_reserved / GIB if self.peak_reserved is not None else None,
            "predicted_parts": json.dumps(self.parts),
            "predicted_step_ms": self.step_s * 1000 if self.step_s is not None else None,
            "predicted_epoch_s": self.epoch_s,
            "predicted_calibration": self.calibration,
        }

    def explain(self) -> str:
        """One line: the peak, its largest parts, the device."""
        largest = sorted(((size, name) for name, size in self.parts.items() if size), reverse=True)[:4]
        parts = ", ".join(f"{name.replace('_', ' ')} {size / GIB:.2f}" for size, name in largest)
        return (
            f"predicted peak {self.peak_process / GIB:.2f} GiB ({parts} GiB) on {self.device} with "
            f"{self.memory_bytes / GIB:.1f} GiB"
        )


def _memory_parts(step: SimulatedStep, device: DeviceSpec, calibrated: DeviceCalibration) -> dict[str, int]:
    at_peak = step.at_peak
    parts = {
        "weights": at_peak.get("weights", 0),
        "gradients": at_peak.get("gradients", 0),
        "optimizer": at_peak.get("optimizer", 0),
        "inputs": at_peak.get("inputs", 0),
        "saved_activations": at_peak.get("saved", 0),
        "transient": at_peak.get("transient", 0),
        "workspace": 0,
        "allocator_slack": 0,
        "context": 0,
        "cache_resident": 0,
    }
    if device.kind == "cuda":
        parts["workspace"] = int(cublas_workspace_mib(device) * MIB)
        # A calibration's allocated ratio (torch's measured peak over the model's) scales what torch allocates.
        for name in ALLOCATED_PARTS:
            parts[name] = int(parts[name] * calibrated.allocated_ratio)
        allocated = sum(parts[name] for name in ALLOCATED_PARTS)
        parts["allocator_slack"] = int(allocated * (calibrated.reserved_ratio - 1.0))
    parts["context"] = int(calibrated.context_gib * GIB)
    return parts


def cublas_workspace_mib(device: DeviceSpec) -> float:
    """cuBLAS's workspace torch allocates for the compute stream: 32 MiB on Hopper and newer (torch's default
    CUBLAS_WORKSPACE_CONFIG :4096:8), about 8 MiB before (:4096:2:16:8)."""
    return HOPPER_WORKSPACE_MIB if re.search(r"\bH(100|200)\b", device.label) else OLDER_WORKSPACE_MIB


def price(
    step: SimulatedStep,
    cell_id: str,
    method: str,
    device: DeviceSpec,
    calibration: Calibration,
    throughput: Throughput | None,
) -> CellPrediction:
    """The prediction of a simulated step on `device` (`throughput`: its rates; None where unknown)."""
    calibrated = calibration.for_device(device.label)
    notes: list[str] = list(step.notes)
    if calibrated is None:
        context = DeviceCalibration().context_gib if device.kind == "cuda" else DEFAULT_CPU_RUNTIME_GIB
        calibrated = DeviceCalibration(context_gib=context)
    parts = _memory_parts(step, device, calibrated)
    allocated = sum(parts[name] for name in ALLOCATED_PARTS)
    reserved = allocated + parts["allocator_slack"] if device.kind == "cuda" else None
    process = (reserved if reserved is not None else allocated) + parts["context"]
    step_s = epoch_s = None
    time_source = "no rates for this device (not in the table): --device names a tabled card to price it on"
    if throughput is not None:
        factor, fitted = calibrated.factor(method)
        share = step.data.mean_items / max(step.data.largest_items, 1)  # a typical batch, not the largest
        step_s = throughput.step_seconds(step.operations) * share * factor
        epoch_s = step_s * step.data.steps_per_epoch
        time_source = f"{throughput.source}; method factor {factor:.3g}, {fitted}"
    if step.data.source == "predicted":
        notes.append("data not generated yet: sizes from the format's options, the largest batch they allow")
    return CellPrediction(
        cell_id=cell_id,
        method=method,
        device=device.label,
        parts=parts,
        peak_allocated=allocated,
        peak_reserved=reserved,
        peak_process=process,
        memory_bytes=device.memory_bytes,
        step_s=step_s,
        epoch_s=epoch_s,
        steps_per_epoch=step.data.steps_per_epoch,
        trainable_params=step.trainable_params,
        total_params=step.total_params,
        calibration=calibration.source if calibration.for_device(device.label) else "defaults",
        time_source=time_source,
        data_source=step.data.source,
        notes=tuple(notes),
    )
