"""SASRec user encoder: causal self-attention over the item embeddings of a history."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SASRecBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attention_out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = hidden.shape
        query, key, value = (
            self.qkv(self.attention_norm(hidden)).view(batch, length, 3, self.heads, dim // self.heads).unbind(2)
        )
        attended = F.scaled_dot_product_attention(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            attn_mask=attention_mask,
            dropout_p=self.dropout.p if self.training else 0.0,
        )
        hidden = hidden + self.dropout(self.attention_out(attended.transpose(1, 2).reshape(batch, length, dim)))
        return hidden + self.dropout(self.ffn(self.ffn_norm(hidden)))


class SASRec(nn.Module):
    """Input: item embeddings [B, L, d] and a validity mask [B, L] (left padding). Output: [B, L, d]."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 2, max_len: int = 10, dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"user encoder width {dim} is not divisible by {heads} heads")
        self.positions = nn.Embedding(max_len, dim)
        self.input_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(dim, heads, dropout) for _ in range(layers))
        self.output_norm = nn.LayerNorm(dim)

    def forward(self, item_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        length = item_embeddings.shape[1]
        positions = torch.arange(length, device=item_embeddings.device)
        hidden = self.dropout(self.input_norm(item_embeddings + self.positions(positions)))
        hidden = hidden * valid.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
        # A query sees earlier valid keys; every query also sees itself so no row is all-masked.
        mask = (causal & valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=hidden.device)
        mask = mask.unsqueeze(1)
        for block in self.blocks:
            hidden = block(hidden, mask) * valid.unsqueeze(-1)
        return self.output_norm(hidden)
