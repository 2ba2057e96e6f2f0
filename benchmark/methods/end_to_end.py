"""The item encoder shared by methods that train through the towers (FFT, LoRA, Adapter, BitFit).

Each tower's pooled last-layer state (first token, or the mean over valid tokens for decoder
LLMs and VideoMAE) goes through a Linear to the embedding width; with several towers, their
concatenation is fused by one more Linear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from benchmark.methods.registry import Method

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


class EndToEndItemEncoder(nn.Module):
    def __init__(self, towers: dict[str, Tower], embed_dim: int):
        super().__init__()
        self.towers = nn.ModuleDict(towers)
        self.heads = nn.ModuleDict({name: nn.Linear(tower.hidden_size, embed_dim) for name, tower in towers.items()})
        self.fusion = nn.Linear(embed_dim * len(towers), embed_dim) if len(towers) > 1 else nn.Identity()

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [
            self.heads[name](cast("Tower", tower).pool(tower(features), features))
            for name, tower in self.towers.items()
        ]
        fused: torch.Tensor = self.fusion(torch.cat(parts, dim=-1))
        return fused


class EndToEndMethod(Method):
    """Base for methods that adapt the towers in place and train through them."""

    def adapt_tower(self, tower: Tower) -> None:
        raise NotImplementedError

    def build_item_encoder(self, towers: dict[str, Tower], embed_dim: int) -> nn.Module:
        for tower in towers.values():
            self.adapt_tower(tower)
        return EndToEndItemEncoder(towers, embed_dim)


def freeze(module: nn.Module) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(False)
