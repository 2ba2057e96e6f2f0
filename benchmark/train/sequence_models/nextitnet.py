"""NextItNet (Yuan et al., 2019): stacked residual blocks of dilated causal 1-D convolutions over the history.

Each block is the paper's: LayerNorm, ReLU, a causal convolution with dilation d, LayerNorm, ReLU, a causal
convolution with dilation 2d, added to the block's input. Padding slots are zeroed after every convolution, so
what a convolution's bias puts there never reaches a real position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.suite.config import setting
from benchmark.train.sequence_models.registry import SequenceModel, register_sequence_model

if TYPE_CHECKING:
    from benchmark.suite.config import TrainConfig


@dataclass(frozen=True)
class NextItNetOptions:
    kernel_size: int = setting(3, minimum=2, help="convolution width (the paper's 3)")
    dilations: tuple[int, ...] = setting(
        (1, 2), minimum=1, help="one residual block per entry, its two convolutions dilated d and 2d (paper: 1, 4)"
    )


class CausalConvolution(nn.Conv1d):
    """A 1-D convolution that sees only the current and earlier positions: [B, L, d] -> [B, L, d]."""

    def __init__(self, dim: int, kernel_size: int, dilation: int):
        super().__init__(dim, dim, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        convolved: torch.Tensor = super().forward(F.pad(hidden.transpose(1, 2), (self.left, 0)))
        return convolved.transpose(1, 2)


class ResidualBlock(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.norm_first, self.norm_second = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.first = CausalConvolution(dim, kernel_size, dilation)
        self.second = CausalConvolution(dim, kernel_size, 2 * dilation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        inner = self.first(torch.relu(self.norm_first(hidden))) * keep
        inner = self.second(torch.relu(self.norm_second(inner))) * keep
        dropped: torch.Tensor = self.dropout(inner)
        return hidden + dropped


class NextItNetEncoder(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dilations: tuple[int, ...], dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(dim, kernel_size, d, dropout) for d in dilations)
        self.output_norm = nn.LayerNorm(dim)

    def forward(self, item_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        keep = valid.unsqueeze(-1).to(item_embeddings.dtype)
        hidden = item_embeddings * keep
        for block in self.blocks:
            hidden = block(hidden, keep)
        normed: torch.Tensor = self.output_norm(hidden)
        return normed


@register_sequence_model
class NextItNet(SequenceModel):
    name = "nextitnet"
    description = "NextItNet: residual blocks of dilated causal convolutions (kernel_size, dilations)"
    Options = NextItNetOptions

    @classmethod
    def build(cls, train: TrainConfig, options: Any) -> nn.Module:
        return NextItNetEncoder(train.embed_dim, options.kernel_size, tuple(options.dilations), train.dropout)
