"""Houlsby adapters: after the attention output projection and after the FFN output projection of
every layer, before the residual LayerNorm; zero-initialised up-projection, so identity at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from benchmark.methods.blocks import Activation, Bottleneck
from benchmark.methods.end_to_end import EndToEndMethod, EndToEndOptions, freeze
from benchmark.methods.registry import register_method
from benchmark.methods.targets import resolve_output_projections
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


@dataclass(frozen=True)
class AdapterOptions(EndToEndOptions):
    bottleneck: int = setting(64, minimum=1, help="adapter width")
    activation: Activation = setting("gelu")


class AdaptedLinear(nn.Module):
    """A frozen projection followed by an adapter; replaces the projection in place."""

    def __init__(self, projection: nn.Linear, adapter: Bottleneck):
        super().__init__()
        self.projection = projection
        self.adapter = adapter

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        adapted: torch.Tensor = self.adapter(self.projection(hidden))
        return adapted


@register_method
class HoulsbyAdapter(EndToEndMethod):
    name = "adapter"
    description = "Houlsby adapters (2 per layer, bottleneck 64), identity at init"
    Options = AdapterOptions

    def adapt_tower(self, tower: Tower) -> None:
        freeze(tower)
        for name in resolve_output_projections(tower.model, tower.label):
            parent_name, _, child_name = name.rpartition(".")
            parent = tower.model.get_submodule(parent_name)
            projection = getattr(parent, child_name)
            adapter = Bottleneck(
                projection.out_features, self.options.bottleneck, self.options.activation, zero_init_up=True
            )
            setattr(parent, child_name, AdaptedLinear(projection, adapter))
