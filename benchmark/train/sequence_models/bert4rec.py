"""BERT4Rec (Sun et al., 2019): a bidirectional transformer over the history, trained as its paper trains it, by
masked item prediction (the Cloze task).

Training: each real position of the whole sequence (history and target) is replaced by a learned [mask] vector
with probability `mask_probability`, every position attends to every real position, and the objective predicts the
masked items (its candidates and negatives as for any sequence model). Evaluation and the user's state: a [mask]
vector appended after the history, whose state predicts the next item, as the paper does at test time. The blocks
are SASRec's pre-LN blocks without the causal mask; positions count one more for the appended [mask].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from benchmark.suite.config import setting
from benchmark.train.objectives.registry import IGNORED
from benchmark.train.sasrec import SASRecBlock
from benchmark.train.sequence_models.registry import SequenceModel, register_sequence_model

if TYPE_CHECKING:
    from benchmark.suite.config import TrainConfig


@dataclass(frozen=True)
class BERT4RecOptions:
    mask_probability: float = setting(
        0.2, minimum=0.01, maximum=1.0, help="share of the sequence's items masked for prediction in training"
    )


class BERT4RecEncoder(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, max_len: int, dropout: float, mask_probability: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"user encoder width {dim} is not divisible by {heads} heads")
        self.mask_probability = mask_probability
        self.mask = nn.Parameter(torch.randn(dim) * 0.02)
        self.positions = nn.Embedding(max_len + 1, dim)  # the history and the appended [mask] (or the target)
        self.input_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(dim, heads, dropout) for _ in range(layers))
        self.output_norm = nn.LayerNorm(dim)

    def encode(self, items: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Bidirectional: every position attends to every real one (and to itself, so no row is empty)."""
        length = items.shape[1]
        positions = torch.arange(length, device=items.device)
        hidden = self.dropout(self.input_norm(items + self.positions(positions))) * valid.unsqueeze(-1)
        mask = (valid[:, None, :] | torch.eye(length, dtype=torch.bool, device=items.device)).unsqueeze(1)
        for block in self.blocks:
            hidden = block(hidden, mask) * valid.unsqueeze(-1)
        output: torch.Tensor = self.output_norm(hidden)
        return output

    # The recommender trains it through `forward(embeddings, valid, position_index)`: its own task, not next-item
    # prediction. (Through `forward`, so that module hooks, the cost breakdown's among them, see the work.)
    masked_training = True

    def forward(
        self, item_embeddings: torch.Tensor, valid: torch.Tensor, position_index: torch.Tensor | None = None
    ) -> Any:
        """Without `position_index` (evaluation, the user's state): [B, L, d] for a history [B, L, d], the last
        position's state the appended [mask]'s. With it (training, the whole sequence [B, L+1]): `masked_view`."""
        if position_index is not None:
            return self.masked_view(item_embeddings, position_index)
        batch = item_embeddings.shape[0]
        items = torch.cat([item_embeddings, self.mask.expand(batch, 1, -1).to(item_embeddings.dtype)], dim=1)
        present = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)
        return self.encode(items, present)[:, 1:]

    def masked_view(
        self, embeddings: torch.Tensor, position_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked item prediction over the whole sequence [B, L+1]: (states, labels: the masked positions' columns,
        IGNORED elsewhere, the inputs with their [mask] vectors). Drawn on the device: no synchronisation."""
        valid = position_index >= 0
        masked = (torch.rand(valid.shape, device=valid.device) < self.mask_probability) & valid
        inputs = torch.where(masked.unsqueeze(-1), self.mask.to(embeddings.dtype), embeddings)
        return self.encode(inputs, valid), position_index.masked_fill(~masked, IGNORED), inputs


@register_sequence_model
class BERT4Rec(SequenceModel):
    name = "bert4rec"
    description = "BERT4Rec: bidirectional transformer trained by masked item prediction (mask_probability)"
    Options = BERT4RecOptions

    @classmethod
    def build(cls, train: TrainConfig, options: Any) -> nn.Module:
        return BERT4RecEncoder(
            train.embed_dim, train.user_layers, train.user_heads, train.max_seq_len, train.dropout,
            options.mask_probability,
        )  # fmt: skip
