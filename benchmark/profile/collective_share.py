"""The share of a distributed step's device time spent in collectives (NCCL's kernels), from torch's profiler on
one untimed step. Collectives run on their own stream and may overlap computation: the figure is the collectives'
share of all the kernel time the step launched, not of its wall time. On a CPU (gloo) the collectives run on host
threads the profiler does not attribute to a step: no figure there."""

from __future__ import annotations

import re
from types import TracebackType

import torch
from torch._C._autograd import DeviceType

# NCCL's kernels are named ncclDevKernel_AllGather_RING_LL, ncclKernel_ReduceScatter_..., and so on.
COLLECTIVE_KERNEL = re.compile(r"nccl", re.IGNORECASE)


def collective_share(kernels: list[tuple[str, float]]) -> float | None:
    """Of (kernel name, device time) pairs, the collectives' share of the time; None without kernel time."""
    total = sum(time for _, time in kernels)
    if total <= 0:
        return None
    return sum(time for name, time in kernels if COLLECTIVE_KERNEL.search(name)) / total


class CollectiveProfile:
    """Profiles the CUDA kernels of the block; `share` is the collectives' share of their time (None on a CPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.share: float | None = None
        self._profile: torch.profiler.profile | None = None

    def __enter__(self) -> CollectiveProfile:
        if self.device.type == "cuda":
            activities = [torch.profiler.ProfilerActivity.CUDA]
            self._profile = torch.profiler.profile(activities=activities)
            self._profile.__enter__()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._profile is None:
            return
        torch.cuda.synchronize(self.device)
        self._profile.__exit__(kind, error, trace)  # type: ignore[no-untyped-call]
        if kind is None:
            kernels = [
                (event.key, float(event.self_device_time_total))
                for event in self._profile.key_averages()
                if event.device_type == DeviceType.CUDA
            ]
            self.share = collective_share(kernels)
