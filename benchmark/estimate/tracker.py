"""What a simulated training step holds and does, tensor by tensor: the step runs on fake tensors (shapes, dtypes,
no memory), and this dispatch mode follows every storage from the operation that creates it until Python frees it,
as the allocator would see it.

Each live storage belongs to one part: `weights` (parameters and buffers), `inputs` (the batches on the device),
`gradients` (from the moment autograd accumulates them into `.grad`), `optimizer` (its state), `saved` (kept by
autograd for the backward pass: the saved-tensor hooks see them) or `transient` (everything else: outputs on their
way to the next operation, workspaces). The peak is the largest total at any moment, with the parts as they were at
that moment; each part's own largest size is kept too, and `activations`: the most the forward pass held at once
beyond weights and inputs (what it keeps for backward and what is still on its way), the quantity torch's own memory
profile calls ACTIVATION.

Beside memory it counts, per operation that launches work (views launch none), the FLOPs (torch's formulas, those of
FlopCounterMode) and the bytes it reads and writes: what the time model prices against a device.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, shape_wrapper

from benchmark.profile.step_cost import CPU_ATTENTION_FLOPS

PARTS = ("weights", "gradients", "optimizer", "inputs", "saved", "transient")
# Operations that launch no kernel: allocation alone, or a new view of the same storage.
NO_KERNEL = frozenset(
    f"aten.{name}"
    for name in ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view", "detach",
                 "alias", "lift_fresh")
)  # fmt: skip
# The CUDA caching allocator hands out blocks in multiples of 512 bytes (c10/cuda/CUDACachingAllocator.cpp,
# kMinBlockSize): a 4-byte step counter holds 512 of them.
CUDA_BLOCK_BYTES = 512


@dataclass
class OperationCost:
    """One operation that launches work: its FLOPs, the bytes it reads and writes, the dtype it computes in."""

    name: str
    flops: int
    bytes_moved: int
    dtype: torch.dtype | None


@dataclass
class TrackedStep:
    peak_bytes: int = 0
    at_peak: dict[str, int] = field(default_factory=dict)
    largest: Counter[str] = field(default_factory=Counter)
    operations: list[OperationCost] = field(default_factory=list)


def _flop_formulas() -> dict[Any, Any]:
    wrapped = {op: shape_wrapper(formula) for op, formula in CPU_ATTENTION_FLOPS.items()}  # type: ignore[no-untyped-call]
    return {**flop_registry, **wrapped}


def _storage_key(tensor: torch.Tensor) -> int:
    """The storage's identity (its StorageImpl), the same for every view of it, real or fake."""
    return int(tensor.untyped_storage()._cdata)


class StepTracker(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self, block_bytes: int = 1) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.block_bytes = block_bytes
        self.part_of: dict[int, str] = {}
        self.size_of: dict[int, int] = {}
        self.live: Counter[str] = Counter()
        self.step = TrackedStep()
        self.new_part = "transient"  # what storages created from now on are, until they are recognised
        self.counting = False  # operation costs are counted only in the step that is priced
        self.in_forward = False
        self.formulas = _flop_formulas()

    def _freed(self, key: int) -> None:
        self.live[self.part_of.pop(key)] -= self.size_of.pop(key)

    def _allocated(self, storage_bytes: int) -> int:
        blocks = -(-storage_bytes // self.block_bytes)
        return max(blocks, 1 if storage_bytes else 0) * self.block_bytes

    def add(self, tensor: torch.Tensor, part: str | None = None) -> None:
        """Follow `tensor`'s storage (once), or move it to `part` if it is followed already."""
        key = _storage_key(tensor)
        if key in self.part_of:
            if part is not None and self.part_of[key] != part:
                size = self.size_of[key]
                self.live[self.part_of[key]] -= size
                self.part_of[key] = part
                self.live[part] += size
                self._note_peak()
            return
        storage = tensor.untyped_storage()
        size = self._allocated(storage.nbytes())
        self.part_of[key], self.size_of[key] = part or self.new_part, size
        self.live[part or self.new_part] += size
        weakref.finalize(storage, self._freed, key)
        self._note_peak()

    def _note_peak(self) -> None:
        step = self.step
        for part, size in self.live.items():
            if size > step.largest[part]:
                step.largest[part] = size
        if self.in_forward:
            forward = self.live["saved"] + self.live["transient"]
            if forward > step.largest["activations"]:
                step.largest["activations"] = forward
        total = sum(self.live.values())
        if total > step.peak_bytes:
            step.peak_bytes, step.at_peak = total, dict(self.live)

    def pack_saved(self, tensor: torch.Tensor) -> torch.Tensor:
        """Saved-tensor hook: what autograd keeps for backward (a weight or an input stays what it is)."""
        key = _storage_key(tensor)
        if self.part_of.get(key) in ("transient", None):
            self.add(tensor, "saved")
        return tensor

    @staticmethod
    def unpack_saved(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [value for value in tree_flatten(out)[0] if isinstance(value, torch.Tensor)]
        for tensor in outputs:
            self.add(tensor)
        if self.counting and outputs and not func.is_view and str(func._overloadpacket) not in NO_KERNEL:
            self._count(func, args, kwargs, out, outputs)
        return out

    def _count(self, func: Any, args: Any, kwargs: Any, out: Any, outputs: list[torch.Tensor]) -> None:
        inputs = [value for value in tree_flatten((args, kwargs))[0] if isinstance(value, torch.Tensor)]
        formula = self.formulas.get(func._overloadpacket)
        flops = int(formula(*args, **kwargs, out_val=out)) if formula is not None else 0
        moved = sum(tensor.numel() * tensor.element_size() for tensor in inputs + outputs)
        floating = next((tensor.dtype for tensor in inputs if tensor.dtype.is_floating_point), None)
        self.step.operations.append(OperationCost(str(func._overloadpacket), flops, moved, floating))
