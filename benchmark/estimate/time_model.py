"""A step's time from what it does: each operation of the simulated step priced by a roofline (its FLOPs at the
device's compute rate, or the bytes it moves at its memory rate, whichever takes longer) plus the host's time to
dispatch it, then scaled by a factor fitted per method from measured rows (`mmbench estimate calibrate`).

On a GPU the host dispatches ahead while kernels run, so an operation costs the larger of its kernel and its dispatch
(a launch-bound step is priced by its operation count); on a CPU the same thread does both, so they add. The rates
are the datasheet peaks scaled by what eager PyTorch typically reaches of them (DEFAULT_* below); a CPU has no
datasheet here, so its rates are measured once per process (a matmul and a copy, a fraction of a second).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from benchmark.estimate.devices import DeviceSpec
from benchmark.estimate.tracker import OperationCost

# What eager PyTorch reaches of a GPU's datasheet: large matmuls ~60% of the dense tensor peak, elementwise kernels
# ~70% of the memory bandwidth; dispatch and launch ~8 us an operation (Python, the dispatcher, the launch).
DEFAULT_FLOP_EFFICIENCY = 0.6
DEFAULT_BANDWIDTH_EFFICIENCY = 0.7
DEFAULT_GPU_OPERATION_S = 8e-6
DEFAULT_CPU_OPERATION_S = 6e-6
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


def _best_seconds(work: Callable[[], object], repeats: int = 5) -> float:
    work()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


@functools.cache
def cpu_throughput() -> Throughput:
    """This CPU's rates, measured: a 512^3 matmul per precision and a 64 MiB copy (best of five each)."""
    size = 512
    rates: dict[str, float] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        left, right = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        rates[name] = 2 * size**3 / _best_seconds(functools.partial(torch.mm, left, right))
    source = torch.empty(16 * 2**20)
    target = torch.empty_like(source)
    copy_s = _best_seconds(functools.partial(target.copy_, source))
    return Throughput(
        rates,
        2 * source.numel() * source.element_size() / copy_s,
        DEFAULT_CPU_OPERATION_S,
        False,
        f"this CPU measured now: fp32 matmul {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f}, "
        f"copy {2 * source.numel() * 4 / copy_s / 1e9:.1f} GB/s, {DEFAULT_CPU_OPERATION_S * 1e6:g} us per operation",
    )
