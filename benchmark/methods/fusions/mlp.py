"""mlp: the concatenated parts through a two-layer MLP (Linear, GELU, Linear; MMSR's "followed by an MLP", here
after concatenation)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.registry import register_fusion


class MLPFusion(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(sum(widths), hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        fused: torch.Tensor = self.mlp(torch.cat(parts, dim=-1))
        return fused


@register_fusion("mlp", "concatenated parts through Linear-GELU-Linear (hidden width: expert_hidden, or 256)")
def mlp(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return MLPFusion(widths, embed_dim, hidden)
