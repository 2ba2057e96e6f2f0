"""sum: each part projected to the item width, then added (MMSR's element-wise sum)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.projected import PartProjections
from benchmark.methods.fusions.registry import register_fusion


class SumFusion(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int):
        super().__init__()
        self.parts = PartProjections(widths, embed_dim)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        projected: torch.Tensor = self.parts(parts)
        return projected.sum(dim=1)


@register_fusion("sum", "each part projected to the item width, then summed")
def sum_fusion(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return SumFusion(widths, embed_dim)
