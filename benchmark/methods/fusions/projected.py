"""What several fusions share: each part projected to the item width by its own Linear."""

from __future__ import annotations

import torch
from torch import nn


class PartProjections(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int):
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(width, embed_dim) for width in widths)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """[n, parts, embed_dim]"""
        return torch.stack([project(part) for project, part in zip(self.projections, parts)], dim=1)
