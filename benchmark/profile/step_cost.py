"""What one training step does, counted rather than timed: FLOPs (forward + backward, split by tower, side network
or head, user encoder and the rest) with torch's FLOP formulas (those of FlopCounterMode), and the bytes of
activations autograd keeps for the backward pass (saved-tensor hooks, each storage once, parameters excluded).

The count runs on its own untimed forward + backward of the first batch (no optimizer step, gradients dropped,
random state restored): the counter's per-operation dispatch would distort a timed step, and the training that
follows is exactly what it would have been without the count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count, shape_wrapper

from benchmark.profile.static_memory import local_tensor
from benchmark.results.pieces import StepCost

aten = torch.ops.aten


# CPU attention runs its own fused kernel, which FlopCounterMode does not know (it counts the CUDA ones): the same
# formulas apply (two batched matmuls forward, four backward). FlopCounterMode passes the arguments' shapes.
def _cpu_attention(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return int(sdpa_flop_count(query, key, value))  # type: ignore[no-untyped-call]


def _cpu_attention_backward(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    return int(sdpa_backward_flop_count(grad_out, query, key, value))  # type: ignore[no-untyped-call]


CPU_ATTENTION_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    return []


class _ComponentFlops(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts FLOPs (torch's formulas) and charges each to the component that did the work.

    Forward: the innermost component module running (hooks keep a stack). Backward: the component whose forward
    created the autograd node being executed (each component's new nodes are labelled when its forward returns).
    FlopCounterMode's own module attribution cannot be used for this: in backward it charges modules whose
    gradient hooks fired (an nn.Identity got a third of a step), so its split did not add up.
    """

    def __init__(self, components: dict[str, list[nn.Module]]):
        super().__init__()  # type: ignore[no-untyped-call]
        wrapped = {op: shape_wrapper(formula) for op, formula in CPU_ATTENTION_FLOPS.items()}  # type: ignore[no-untyped-call]
        self.registry = {**flop_registry, **wrapped}
        self.flops: dict[str, int] = {}
        self.stack: list[str] = []
        self.node_component: dict[Any, str] = {}
        self.stops: list[set[Any]] = []
        self.handles: list[Any] = []
        for component, modules in components.items():
            for module in modules:
                self.handles.append(module.register_forward_pre_hook(self._enter(component), with_kwargs=True))
                self.handles.append(module.register_forward_hook(self._leave(component), with_kwargs=True))

    def _enter(self, component: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            self.stack.append(component)
            self.stops.append({t.grad_fn for t in _tensors([args, kwargs]) if t.grad_fn is not None})

        return hook

    def _leave(self, component: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            self.stack.pop()
            stops = self.stops.pop()
            pending: list[Any] = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
            seen: set[Any] = set()
            while pending:  # every node between the module's inputs and its outputs is its work
                node = pending.pop()
                if node is None or node in seen or node in stops:
                    continue
                seen.add(node)
                self.node_component.setdefault(node, component)  # inner components label first
                pending.extend(next_node for next_node, _ in node.next_functions)

        return hook

    def remove_hooks(self) -> None:
        for handle in self.handles:
            handle.remove()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.registry.get(func._overloadpacket)
        if formula is not None:
            node = torch._C._current_autograd_node()
            if node is not None:
                component = self.node_component.get(node, "other")
            else:
                component = self.stack[-1] if self.stack else "other"
            self.flops[component] = self.flops.get(component, 0) + int(formula(*args, **kwargs, out_val=out))
        return out


def _components(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The modules whose work makes each component (towers run inside the item encoder: the inner label wins)."""
    item_encoder = getattr(model, "item_encoder", None)
    towers = getattr(item_encoder, "towers", None)  # None: a cached side network (its towers never run)
    components: dict[str, list[nn.Module]] = {"side": [item_encoder] if item_encoder is not None else []}
    components["tower"] = list(towers.values()) if towers is not None else []
    user = getattr(model, "user_encoder", None)
    components["user"] = [user] if user is not None else []
    return components


class _SavedBytes:
    """Bytes of the tensors autograd saves for backward: each storage once, the model's parameters left out
    (they are weights, counted apart)."""

    def __init__(self, model: nn.Module):
        # An FSDP-sharded parameter (a DTensor) has no storage of its own: its local shard's is the one to skip.
        self.skip = {local_tensor(p).untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key not in self.skip and key not in self.seen:
                self.seen.add(key)
                self.bytes += storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor


def count_step_cost(model: nn.Module, loss_of_batch: Callable[[], torch.Tensor], items: int) -> StepCost:
    """Count one forward + backward of `loss_of_batch` (which encodes `items` items); leaves no gradient behind."""
    saved = _SavedBytes(model)
    counter = _ComponentFlops(_components(model))
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"][:1]
    try:
        with torch.random.fork_rng(devices=devices):  # dropout draws here must not shift training's
            with counter, torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
                loss_of_batch().backward()  # type: ignore[no-untyped-call]
    finally:
        counter.remove_hooks()
    for parameter in model.parameters():
        parameter.grad = None
    flops = counter.flops
    return StepCost(
        flops_per_step=sum(flops.values()),
        flops_tower=flops.get("tower", 0),
        flops_side=flops.get("side", 0),
        flops_user=flops.get("user", 0),
        flops_other=flops.get("other", 0),
        flops_step_items=items,
        activation_saved_bytes=saved.bytes,
    )
