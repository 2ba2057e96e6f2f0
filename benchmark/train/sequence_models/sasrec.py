"""SASRec (Kang and McAuley, 2018): causal self-attention over the history; mmbench's default user encoder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from benchmark.train.sasrec import SASRec
from benchmark.train.sequence_models.registry import SequenceModel, register_sequence_model

if TYPE_CHECKING:
    from benchmark.suite.config import TrainConfig


@register_sequence_model
class SASRecModel(SequenceModel):
    name = "sasrec"
    description = "SASRec: causal self-attention (train.user_layers blocks, user_heads heads, user_encoder style)"

    @classmethod
    def build(cls, train: TrainConfig, options: Any) -> nn.Module:
        return SASRec(
            train.embed_dim, train.user_layers, train.user_heads, train.max_seq_len, train.dropout, train.user_encoder
        )
