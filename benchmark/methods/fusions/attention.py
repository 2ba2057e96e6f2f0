"""co_attention and merged_attention: the projected parts as a short sequence of tokens, one per part, attended
over by one multi-head attention layer, then averaged.

- merged_attention: every part attends to every part, itself included (MMSR's merged attention: one attention
  over the merged modalities);
- co_attention: every part attends to the other parts only (MMSR's co-attention: each modality queries the
  others); with a single part it attends to itself.

MMSR applies them to token sequences; a method here fuses one vector per part, so a "sequence" is the parts.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.fusions.projected import PartProjections
from benchmark.methods.fusions.registry import register_fusion

HEADS = 2


class AttentionFusion(nn.Module):
    def __init__(self, widths: list[int], embed_dim: int, others_only: bool):
        super().__init__()
        self.parts = PartProjections(widths, embed_dim)
        self.attention = nn.MultiheadAttention(embed_dim, HEADS if embed_dim % HEADS == 0 else 1, batch_first=True)
        self.norm = nn.LayerNorm(embed_dim)
        count = len(widths)
        blocked = torch.eye(count, dtype=torch.bool) if others_only and count > 1 else torch.zeros(count, count).bool()
        self.register_buffer("blocked", blocked, persistent=False)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        tokens = self.parts(parts)  # [n, parts, d]
        attended, _ = self.attention(tokens, tokens, tokens, attn_mask=self.blocked, need_weights=False)
        fused: torch.Tensor = self.norm(tokens + attended).mean(dim=1)
        return fused


@register_fusion("co_attention", "each projected part attends to the other parts, then the mean")
def co_attention(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return AttentionFusion(widths, embed_dim, others_only=True)


@register_fusion("merged_attention", "the projected parts attend to each other and themselves, then the mean")
def merged_attention(widths: list[int], embed_dim: int, hidden: int) -> nn.Module:
    return AttentionFusion(widths, embed_dim, others_only=False)
