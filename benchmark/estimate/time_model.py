"""A step's time from what it does: each operation of the simulated step priced by a roofline (its FLOPs at the
device's compute rate, or the bytes it moves at its memory rate, whichever takes longer) plus the host's time to
dispatch it, then scaled by a factor fitted per method from measured rows (`mmbench estimate calibrate`).

On a GPU the host dispatches ahead while kernels run, so an operation costs the larger of its kernel and its dispatch
(a launch-bound step is priced by its operation count); on a CPU the same thread does both, so they add. The rates
are the datasheet peaks scaled by what eager PyTorch typically reaches of them (DEFAULT_* below); a CPU has no
datasheet here, so it gets nominal per-core rates (NOMINAL_CPU_*), which a calibration on its own rows corrects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from benchmark.estimate.devices import DeviceSpec
from benchmark.estimate.tracker import OperationCost

# What eager PyTorch reaches of a GPU's datasheet: large matmuls ~60% of the dense tensor peak, elementwise kernels
# ~70% of the memory bandwidth; dispatch and launch ~8 us an operation (Python, the dispatcher, the launch).
DEFAULT_FLOP_EFFICIENCY = 0.6
DEFAULT_BANDWIDTH_EFFICIENCY = 0.7
DEFAULT_GPU_OPERATION_S = 8e-6
DEFAULT_CPU_OPERATION_S = 10e-6
# Per core, what eager PyTorch reaches on a recent x86 core (AVX2/AVX-512 FMA): ~40 GFLOP/s in the matmuls of these
# models, ~8 GB/s of memory traffic (up to ~60 GB/s for the whole socket).
NOMINAL_CPU_CORE_FLOPS = 40e9
NOMINAL_CPU_CORE_BYTES = 8e9
NOMINAL_CPU_MAX_BYTES = 60e9
LOW_PRECISION = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Throughput:
    flops_per_s: dict[str, float]  # by the dtype an operation computes in: bf16, fp16, fp32
    bytes_per_s: float
    operation_s: float  # host time to dispatch one operation
    overlapped: bool  # kernels run while the host dispatches (a GPU)
    source: str  # where the rates come from, said wherever a time is printed

    def operation_seconds(self, operation: OperationCost) -> float:
        rate = self.flops_per_s[LOW_PRECISION.get(operation.dtype, "fp32")] if operation.dtype else None
        compute = operation.flops / rate if rate else 0.0
        memory = operation.bytes_moved / self.bytes_per_s
        kernel = max(compute, memory)
        return max(kernel, self.operation_s) if self.overlapped else kernel + self.operation_s

    def step_seconds(self, operations: Iterable[OperationCost]) -> float:
        return sum(self.operation_seconds(operation) for operation in operations)


def gpu_throughput(device: DeviceSpec, tf32: bool = False) -> Throughput | None:
    """A tabled GPU's rates (None for a device known by its memory only)."""
    if device.peak is None or device.bandwidth_bytes_per_s is None:
        return None
    rates = {precision: (device.flops_per_s(precision, tf32) or 0.0) * DEFAULT_FLOP_EFFICIENCY
             for precision in ("bf16", "fp16", "fp32")}  # fmt: skip
    return Throughput(
        rates,
        device.bandwidth_bytes_per_s * DEFAULT_BANDWIDTH_EFFICIENCY,
        DEFAULT_GPU_OPERATION_S,
        True,
        f"{device.label} datasheet x {DEFAULT_FLOP_EFFICIENCY:g} (compute), x {DEFAULT_BANDWIDTH_EFFICIENCY:g} "
        f"(bandwidth), {DEFAULT_GPU_OPERATION_S * 1e6:g} us per operation",
    )


def cpu_throughput() -> Throughput:
    """Nominal rates for this machine's cores (a CPU has no datasheet here, and a measurement taken at estimate
    time would move with whatever else runs): what eager PyTorch reaches on one modern x86 core, times the cores
    torch uses. A calibration from this machine's rows replaces the guess with its own factors."""
    cores = torch.get_num_threads()
    flops = NOMINAL_CPU_CORE_FLOPS * cores
    bandwidth = min(NOMINAL_CPU_CORE_BYTES * cores, NOMINAL_CPU_MAX_BYTES)
    return Throughput(
        {"fp32": flops, "bf16": flops, "fp16": flops / 8},  # fp16 matmuls are emulated on most CPUs
        bandwidth,
        DEFAULT_CPU_OPERATION_S,
        False,
        f"nominal CPU rates for {cores} core(s): {flops / 1e9:.0f} GFLOP/s, {bandwidth / 1e9:.0f} GB/s, "
        f"{DEFAULT_CPU_OPERATION_S * 1e6:g} us per operation",
    )
