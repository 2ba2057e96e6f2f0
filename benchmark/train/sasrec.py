"""SASRec user encoder: causal self-attention over the item embeddings of a history.

Two block styles: `pre-ln` (mmbench's default: LayerNorm before attention and feed-forward, a d-wide GELU
feed-forward, a final LayerNorm) and `post-ln` (the IISAN code's user encoder: LayerNorm after each residual sum,
eps 1e-6, bias-free attention projections, a 4d-wide ReLU feed-forward, Xavier-normal weights, no final norm).
"""

from __future__ import annotations

import typing
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

UserEncoderStyle = Literal["pre-ln", "post-ln"]
USER_ENCODER_STYLES: tuple[str, ...] = typing.get_args(UserEncoderStyle)
# The IISAN code's LayerNorm epsilon and feed-forward width factor.
POST_LN_EPS = 1e-6
POST_LN_FFN_FACTOR = 4


def _attend(qkv: nn.Linear, heads: int, hidden: torch.Tensor, mask: torch.Tensor, dropout: float) -> torch.Tensor:
    batch, length, dim = hidden.shape
    query, key, value = qkv(hidden).view(batch, length, 3, heads, dim // heads).unbind(2)
    attended = F.scaled_dot_product_attention(
        query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), attn_mask=mask, dropout_p=dropout
    )
    return attended.transpose(1, 2).reshape(batch, length, dim)


class SASRecBlock(nn.Module):
    """Pre-LN: h + attn(LN(h)), then h + ffn(LN(h)) with a d-wide GELU feed-forward."""

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
        p = self.dropout.p if self.training else 0.0
        attended = _attend(self.qkv, self.heads, self.attention_norm(hidden), attention_mask, p)
        hidden = hidden + self.dropout(self.attention_out(attended))
        fed: torch.Tensor = self.dropout(self.ffn(self.ffn_norm(hidden)))
        return hidden + fed


class PostLNBlock(nn.Module):
    """Post-LN, as the IISAN code's TransformerBlock: LN(h + attn(h)), then LN(h + ffn(h)) with a 4d-wide ReLU
    feed-forward; query, key, value and output projections without bias."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # one matmul for the code's three bias-free projections
        self.attention_out = nn.Linear(dim, dim, bias=False)
        self.attention_norm = nn.LayerNorm(dim, eps=POST_LN_EPS)
        self.ffn = nn.Sequential(
            nn.Linear(dim, POST_LN_FFN_FACTOR * dim), nn.ReLU(), nn.Linear(POST_LN_FFN_FACTOR * dim, dim)
        )
        self.ffn_norm = nn.LayerNorm(dim, eps=POST_LN_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        p = self.dropout.p if self.training else 0.0
        attended = _attend(self.qkv, self.heads, hidden, attention_mask, p)
        hidden = self.attention_norm(hidden + self.dropout(self.attention_out(attended)))
        normed: torch.Tensor = self.ffn_norm(hidden + self.dropout(self.ffn(hidden)))
        return normed


def _xavier_init(module: nn.Module) -> None:
    """The IISAN code's user-encoder init: Xavier-normal weights of every Linear (the fused query/key/value weight as
    its three projections) and of the position embedding, zero biases."""
    if isinstance(module, nn.Linear):
        for chunk in module.weight.data.chunk(3 if module.out_features == 3 * module.in_features else 1):
            nn.init.xavier_normal_(chunk)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.xavier_normal_(module.weight)


class SASRec(nn.Module):
    """Input: item embeddings [B, L, d] and a validity mask [B, L] (left padding). Output: [B, L, d]."""

    def __init__(
        self,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        max_len: int = 10,
        dropout: float = 0.1,
        style: str = "pre-ln",
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"user encoder width {dim} is not divisible by {heads} heads")
        if style not in USER_ENCODER_STYLES:
            raise ValueError(f"user encoder must be one of {USER_ENCODER_STYLES}, got '{style}'")
        post_ln = style == "post-ln"
        self.positions = nn.Embedding(max_len, dim)
        self.input_norm = nn.LayerNorm(dim, eps=POST_LN_EPS) if post_ln else nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        block = PostLNBlock if post_ln else SASRecBlock
        self.blocks = nn.ModuleList(block(dim, heads, dropout) for _ in range(layers))
        self.output_norm: nn.Module = nn.Identity() if post_ln else nn.LayerNorm(dim)
        if post_ln:
            self.apply(_xavier_init)

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
        output: torch.Tensor = self.output_norm(hidden)
        return output
