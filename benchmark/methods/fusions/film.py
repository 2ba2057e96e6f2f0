"""film: feature-wise linear modulation (Perez et al., 2018): the first part, projected, scaled and shifted by
what the other parts give (one Linear from their concatenation to a scale and a shift): gamma * a + beta. The
first part is the primary one (text for the end-to-end methods; the text path for the side networks)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.registry import register_fusion


class FiLMFusion(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int):
        super().__init__()
        self.primary = nn.Linear(widths[0], embed_dim)
        self.modulation = nn.Linear(sum(widths[1:]) or widths[0], 2 * embed_dim)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        condition = torch.cat(parts[1:], dim=-1) if len(parts) > 1 else parts[0]
        scale, shift = self.modulation(condition).chunk(2, dim=-1)
        fused: torch.Tensor = (1 + scale) * self.primary(parts[0]) + shift  # identity modulation at scale 0
        return fused


@register_fusion("film", "FiLM: the first part scaled and shifted by the others")
def film(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return FiLMFusion(widths, embed_dim)
