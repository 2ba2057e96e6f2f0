"""The bottleneck block shared by the Houlsby adapter (inside the towers) and the side networks (beside them)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["gelu", "relu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


class Bottleneck(nn.Module):
    """x + up(act(down(x))). With `zero_init_up` the block starts as the identity (what an adapter inserted into a
    pretrained tower needs); a side network's blocks (SANB) start from the default initialisation."""

    def __init__(self, width: int, bottleneck: int, activation: Activation = "gelu", zero_init_up: bool = False):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.activation = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width)
        if zero_init_up:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update: torch.Tensor = self.up(self.activation(self.down(hidden)))
        return hidden + update
