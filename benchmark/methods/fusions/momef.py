"""momef: mixture of modality experts (CROSSAN's): one expert FFN per part, a softmax router over the
concatenated parts weighting the experts' outputs."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.registry import register_fusion


class MOMEF(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int, expert_hidden: int):
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(width, expert_hidden), nn.GELU(), nn.Linear(expert_hidden, embed_dim))
            for width in widths
        )
        self.router = nn.Linear(sum(widths), len(widths))

    def route(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Router weights [n, experts]; each row sums to one."""
        return torch.softmax(self.router(torch.cat(parts, dim=-1)), dim=-1)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        weights = self.route(parts)
        outputs = torch.stack([expert(part) for expert, part in zip(self.experts, parts)], dim=1)  # [n, experts, d]
        return (weights.unsqueeze(-1) * outputs).sum(dim=1)


@register_fusion("momef", "mixture of modality experts: an expert FFN per part, a softmax router (expert_hidden)")
def momef(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return MOMEF(widths, embed_dim, hidden)
