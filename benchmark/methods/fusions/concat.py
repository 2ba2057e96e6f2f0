"""concat: one Linear over the concatenated parts (IISAN's fusion, and the end-to-end methods')."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.registry import register_fusion


class ConcatFusion(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int):
        super().__init__()
        self.linear = nn.Linear(sum(widths), embed_dim)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        fused: torch.Tensor = self.linear(torch.cat(parts, dim=-1))
        return fused


@register_fusion("concat", "one Linear over the concatenated parts (IISAN's)")
def concat(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return ConcatFusion(widths, embed_dim)
