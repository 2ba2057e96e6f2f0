"""Item encoders of the decoupled side-network family: hidden states in, item embedding out.

Uncached, the frozen towers run every step (forward only) to produce the kept states; cached,
the states come from the hidden-state cache and the towers are not part of the model at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.registry import Method
from benchmark.methods.side_network import kept_states
from benchmark.modalities.registry import states_key

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


def check_indices(tower: Tower, indices: list[int]) -> list[int]:
    bad = [index for index in indices if not 0 <= index <= tower.num_layers]
    if bad:
        raise TowerError(f"{tower.label} has hidden states 0..{tower.num_layers}; layer indices {bad} do not exist")
    return indices


@dataclass(frozen=True)
class SidePlan:
    """What every side-network encoder is built from: the frozen towers, the hidden states kept from each,
    whether they come from the cache, and the item embedding width."""

    towers: dict[str, Tower]
    layer_indices: dict[str, list[int]]
    cached: bool
    embed_dim: int

    @property
    def widths(self) -> dict[str, int]:
        return {modality: tower.hidden_size for modality, tower in self.towers.items()}


class SideItemEncoder(nn.Module):
    """Supplies per-modality kept states [n, blocks, hidden] to a side network (`side_forward`)."""

    def __init__(self, plan: SidePlan):
        super().__init__()
        towers, layer_indices, cached = plan.towers, plan.layer_indices, plan.cached
        self.layer_indices = layer_indices
        self.modalities = list(towers)
        self.cached = cached
        if cached:
            self.towers = None  # the towers stay off the device: training reads the cache
        else:
            for tower in towers.values():
                for parameter in tower.parameters():
                    parameter.requires_grad_(False)
            self.towers = nn.ModuleDict(towers)

    def train(self, mode: bool = True) -> SideItemEncoder:
        super().train(mode)
        if self.towers is not None:
            self.towers.eval()  # frozen feature extractors: no dropout, as when the cache is built
        return self

    def prepare_inputs(self, features: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Cached: the fp16 states widened to fp32 (what the side network computes with) before the step starts."""
        if not self.cached:
            return features
        keys = [states_key(m) for m in self.modalities]
        return {**features, **{key: features[key].float() for key in keys if key in features}}

    def modality_states(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.cached:
            return {m: features[states_key(m)].float() for m in self.modalities}
        towers = cast(nn.ModuleDict, self.towers)  # uncached: the towers are there (set in __init__)
        return {m: kept_states(cast("Tower", towers[m]), features, self.layer_indices[m]) for m in self.modalities}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.side_forward(self.modality_states(features))

    def side_forward(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class SideEncoderClass(Protocol):
    """A SideItemEncoder subclass, built from a plan and its method's options."""

    def __call__(self, plan: SidePlan, options: Any) -> SideItemEncoder: ...


class SideNetworkMethod(Method):
    """Base of the decoupled methods: `layer_plan` says which hidden states each tower supplies (and so what the
    cache holds), `Encoder` is the side network built from them; `uses_cache` selects the cached variant."""

    Encoder: ClassVar[SideEncoderClass]
    # The trainable side network is small and the towers frozen: sharding buys nothing, replicating it (DDP) is the
    # reference code's way (the IISAN and IISAN-Versa code train under DDP).
    distributed_strategies: ClassVar[tuple[str, ...]] = ("ddp",)

    def layer_plan(self, towers: dict[str, Tower]) -> dict[str, list[int]]:
        raise NotImplementedError

    def check_plan(self, plan: SidePlan) -> None:
        """Refuse towers the side network cannot serve (a TowerError naming them); the default accepts any."""

    def build_item_encoder(self, towers: dict[str, Tower], embed_dim: int) -> nn.Module:
        plan = SidePlan(towers, self.layer_plan(towers), self.uses_cache, embed_dim)
        self.check_plan(plan)
        return self.Encoder(plan, self.options)
