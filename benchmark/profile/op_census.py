"""What one training step asks of the device, counted operator by operator: the operators that launch work, how
many of them only cast a dtype, and every operator that makes the host wait for the device.

Why count rather than profile: a step whose host stops to read a value from the device (a boolean mask's
`nonzero`, an `.item()`) cannot queue the next kernels while the device works, so a small-kernel step becomes
launch-bound; and a step that launches more, smaller kernels pays more per-launch overhead. Both are properties
of the code, visible on any device: counted on a CPU, they say what a GPU step will do.

The count is a TorchDispatchMode over one step (forward, backward and optimizer; the autograd engine carries the
mode into backward), so it sees what reaches the kernels after autocast and composite decompositions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Operators that allocate or relabel memory without running a kernel.
_NO_KERNEL = {
    aten.empty.memory_format,
    aten.empty_strided.default,
    aten.empty_like.default,
    aten.new_empty.default,
    aten.new_empty_strided.default,
    aten.detach.default,
    aten.lift_fresh.default,
    aten.set_.source_Storage_storage_offset,
    aten.resize_.default,
}

# Operators whose result size or value the host needs before it can go on (on a CUDA tensor: a synchronisation).
_ALWAYS_SYNC = {
    aten._local_scalar_dense.default,  # .item(), bool(tensor), int(tensor), Python control flow on a tensor
    aten.nonzero.default,
    aten.masked_select.default,
    aten.equal.default,
    aten.is_nonzero.default,
    aten.bincount.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.unique_dim_consecutive.default,
}
# Operators that synchronise only in some forms: indexing with a boolean mask (the mask's true count sizes the
# result), repeat_interleave without output_size.
_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def _boolean_index(args: tuple[Any, ...]) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8) for index in indices)


def _device_to_host(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A copy from an accelerator to the host (the host waits for it unless non_blocking into pinned memory)."""
    if func is aten._to_copy.default:
        source, target = args[0], kwargs.get("device")
        return (
            isinstance(source, torch.Tensor)
            and source.device.type != "cpu"
            and target is not None
            and torch.device(target).type == "cpu"
            and not kwargs.get("non_blocking", False)
        )
    if func is aten.copy_.default:
        target, source = args[0], args[1]
        return (
            isinstance(source, torch.Tensor)
            and source.device.type != "cpu"
            and target.device.type == "cpu"
            and not (len(args) > 2 and args[2])
        )
    return False


def is_synchronising(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether this operator call makes the host wait for the device (on a CUDA tensor)."""
    if func in _ALWAYS_SYNC:
        return True
    if func in _INDEXING:
        return _boolean_index(args)
    if func is aten.repeat_interleave.Tensor or func is aten.repeat_interleave.self_Tensor:
        return kwargs.get("output_size") is None
    return _device_to_host(func, args, kwargs)


def _is_cast(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if func is aten._to_copy.default:
        dtype = kwargs.get("dtype")
        return dtype is not None and isinstance(args[0], torch.Tensor) and dtype != args[0].dtype
    if func is aten.copy_.default:
        return bool(args[0].dtype != args[1].dtype)
    return False


def launches_kernel(func: Any) -> bool:
    """Whether an operator runs device work: not a view (its output aliases its input) and not a bare allocation."""
    if func in _NO_KERNEL or func.namespace != "aten":
        return False
    return not func.is_view


@dataclass
class StepCensus:
    """The operators of one counted region."""

    kernels: int = 0  # operators that launch device work
    casts: int = 0  # of which: dtype conversions
    syncs: Counter[str] = field(default_factory=Counter)  # synchronising operator -> calls

    @property
    def sync_count(self) -> int:
        return sum(self.syncs.values())

    def sync_summary(self) -> str:
        """'nonzero x2, index(bool) x1', or '' when none."""
        return ", ".join(f"{name} x{count}" for name, count in sorted(self.syncs.items()))


class OpCensus(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """`with OpCensus() as census: step()` -> census.result."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.result = StepCensus()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if launches_kernel(func):
            self.result.kernels += 1
            if _is_cast(func, args, kwargs):
                self.result.casts += 1
        if is_synchronising(func, args, kwargs):
            name = func._overloadpacket.__name__
            if func in _INDEXING:
                name += "(bool mask)"
            self.result.syncs[name] += 1
        return func(*args, **kwargs)
