"""DDP or FSDP2 around a distributed cell's step.

DDP replicates the model and all-reduces gradients in buckets while the backward runs. FSDP2 (`fully_shard`)
shards each parameter over the ranks: every transformer block (each entry of a ModuleList: the towers' layers,
the user encoder's blocks), then the item encoder and the user encoder (what the blocks leave: embeddings, norms,
heads) and the step as the root; a block's weights are gathered just before it runs and freed after. With bf16 or
fp16 the gathered weights are in that precision (`MixedPrecisionPolicy`), gradients are reduced in fp32, and the
sharded fp32 weights are what the optimizer updates.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from benchmark.train.distributed.step_loss import DistributedStepLoss
from benchmark.train.distributed.world import World
from benchmark.train.precision import DTYPES
from benchmark.train.recommender import Recommender


def distributed_step(recommender: Recommender, world: World, device: torch.device, precision: str) -> nn.Module:
    """The module whose call is a distributed cell's training loss, wrapped for the cell's strategy.

    DDP and FSDP are imported here, not with the module: FSDP's import takes 0.65 s, which every cell process (and
    `mmbench estimate`) would pay otherwise."""
    from torch.nn.parallel import DistributedDataParallel

    step = DistributedStepLoss(recommender, world)
    if world.strategy == "fsdp":
        return _fully_shard(step, world, device, precision)
    # The recommender's only buffer (logQ's item log-probabilities) never changes: no broadcast every step (torch
    # 2.13 renamed the option; older torch knows only the old name).
    buffers = "forward_sync_buffers" if "forward_sync_buffers" in _ddp_options() else "broadcast_buffers"
    options: dict[str, Any] = {buffers: False}
    return DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None, **options)


def _ddp_options() -> set[str]:
    from torch.nn.parallel import DistributedDataParallel

    return set(inspect.signature(DistributedDataParallel.__init__).parameters)


def shard_units(recommender: nn.Module) -> list[nn.Module]:
    """What FSDP shards as a unit, in the order it is wrapped: each block (every entry of a ModuleList, innermost
    first: a block's inside before the block), then the item encoder and the user encoder; each once, only those
    with parameters."""
    blocks: list[nn.Module] = []
    for child in recommender.modules():
        if isinstance(child, nn.ModuleList):
            blocks.extend(entry for entry in child if any(True for _ in entry.parameters()))
    units: list[nn.Module] = []
    seen: set[int] = set()
    for unit in [
        *reversed(blocks),
        getattr(recommender, "item_encoder", None),
        getattr(recommender, "user_encoder", None),
    ]:
        if unit is None or id(unit) in seen or not any(True for _ in unit.parameters()):
            continue
        seen.add(id(unit))
        units.append(unit)
    return units


def _fully_shard(step: DistributedStepLoss, world: World, device: torch.device, precision: str) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (world.size,))
    dtype = DTYPES[precision]
    policy = MixedPrecisionPolicy(
        param_dtype=dtype if precision != "fp32" else None, reduce_dtype=torch.float32 if precision != "fp32" else None
    )
    for unit in shard_units(step.recommender):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(step, mesh=mesh, mp_policy=policy)
    return step
