"""Houlsby adapters: after the attention output projection and after the FFN output projection of
every layer, before the residual LayerNorm; zero-initialised up-projection, so identity at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from benchmark.suite.config import setting
from benchmark.methods.end_to_end import EndToEndMethod, freeze
from benchmark.methods.registry import register_method
from benchmark.methods.targets import resolve_output_projections

Activation = Literal["gelu", "relu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


@dataclass(frozen=True)
class AdapterOptions:
    bottleneck: int = setting(64, minimum=1, help="adapter width")
    activation: Activation = setting("gelu")


class BottleneckAdapter(nn.Module):
    """x + up(act(down(x))), up zero-initialised."""

    def __init__(self, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.activation = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.activation(self.down(hidden)))


class AdaptedLinear(nn.Module):
    """A frozen projection followed by an adapter; replaces the projection in place."""

    def __init__(self, projection: nn.Linear, adapter: BottleneckAdapter):
        super().__init__()
        self.projection = projection
        self.adapter = adapter

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.projection(hidden))


@register_method
class HoulsbyAdapter(EndToEndMethod):
    name = "adapter"
    description = "Houlsby adapters (2 per layer, bottleneck 64), identity at init"
    Options = AdapterOptions

    def adapt_tower(self, tower: nn.Module) -> None:
        freeze(tower)
        for name in resolve_output_projections(tower.model, f"{tower.modality} tower '{tower.preset_name}'"):
            parent_name, _, child_name = name.rpartition(".")
            parent = tower.model.get_submodule(parent_name)
            projection = getattr(parent, child_name)
            adapter = BottleneckAdapter(projection.out_features, self.options.bottleneck, self.options.activation)
            setattr(parent, child_name, AdaptedLinear(projection, adapter))
