"""GRU4Rec (Hidasi et al., 2016; as MMSR uses it for sequential recommendation): a GRU over the history.

The GRU has no bias terms. Why: histories are left-padded, and a padding slot's embedding is zero; a bias-free GRU
maps a zero input on a zero state to a zero state (every gate's pre-activation is 0, so the candidate state is
tanh(0) = 0), so the padding in front of a history leaves the state where a history without it starts. Packing the
sequences instead would need their lengths on the host, a synchronisation inside every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from benchmark.suite.config import setting
from benchmark.train.sequence_models.registry import SequenceModel, register_sequence_model

if TYPE_CHECKING:
    from benchmark.suite.config import TrainConfig


@dataclass(frozen=True)
class GRU4RecOptions:
    layers: int = setting(1, minimum=1, help="stacked GRU layers (GRU4Rec's default: one)")


class GRU4RecEncoder(nn.Module):
    def __init__(self, dim: int, layers: int, dropout: float):
        super().__init__()
        self.input_dropout = nn.Dropout(dropout)
        between = dropout if layers > 1 else 0.0  # torch applies it between stacked layers only
        self.gru = nn.GRU(dim, dim, num_layers=layers, bias=False, batch_first=True, dropout=between)
        self.output = nn.Linear(dim, dim)

    def forward(self, item_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.input_dropout(item_embeddings * valid.unsqueeze(-1)))
        projected: torch.Tensor = self.output(states)
        return projected


@register_sequence_model
class GRU4Rec(SequenceModel):
    name = "gru4rec"
    description = "GRU4Rec: a bias-free GRU over the history (padding-invariant), then a linear output"
    Options = GRU4RecOptions

    @classmethod
    def build(cls, train: TrainConfig, options: Any) -> nn.Module:
        return GRU4RecEncoder(train.embed_dim, options.layers, train.dropout)
