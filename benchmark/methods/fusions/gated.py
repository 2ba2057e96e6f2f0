"""gated: the projected parts mixed by gates computed from all of them: a softmax over the parts for every
dimension, from one Linear over the concatenated parts (for two parts, MMSR's g * a + (1 - g) * b)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.projected import PartProjections
from benchmark.methods.fusions.registry import register_fusion


class GatedFusion(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int):
        super().__init__()
        self.parts = PartProjections(widths, embed_dim)
        self.gates = nn.Linear(sum(widths), len(widths) * embed_dim)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        projected: torch.Tensor = self.parts(parts)  # [n, parts, d]
        gates = torch.softmax(self.gates(torch.cat(parts, dim=-1)).view_as(projected), dim=1)
        return (gates * projected).sum(dim=1)


@register_fusion("gated", "projected parts mixed by per-dimension softmax gates computed from all parts")
def gated(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return GatedFusion(widths, embed_dim)
