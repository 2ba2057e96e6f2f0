"""The recommender: item encoder (from the method) -> sequence model (SASRec by default) -> objective (in-batch
softmax with own-history masking by default)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from benchmark.train.objectives.registry import IGNORED, Objective, StepScores
from benchmark.train.objectives.softmax import InBatchSoftmax
from benchmark.train.sasrec import SASRec


class SequenceOutputs(NamedTuple):
    """What the user encoder gives the objective for a batch's rows."""

    users: torch.Tensor  # [B, L, d]
    labels: torch.Tensor  # [B, L]: each position's target column, IGNORED where it predicts nothing
    history: torch.Tensor  # [B, L, d]: the history positions' item vectors
    predict: torch.Tensor | None  # [B, L]: the positions that predict, when known


class Recommender(nn.Module):
    # A buffer (registered in __init__; None: no correction), declared here for its type.
    log_item_probability: torch.Tensor | None

    def __init__(
        self,
        item_encoder: nn.Module,
        embed_dim: int,
        max_seq_len: int,
        layers: int,
        heads: int,
        dropout: float,
        log_item_probability: torch.Tensor | None = None,
        user_encoder: str = "pre-ln",
        *,
        sequence_model: nn.Module | None = None,
        objective: Objective | None = None,
    ):
        """`sequence_model` and `objective` are the cell's (train/sequence_models, train/objectives); without them,
        SASRec of the given shape and style, and in-batch softmax."""
        super().__init__()
        self.item_encoder = item_encoder
        self.user_encoder = sequence_model or SASRec(embed_dim, layers, heads, max_seq_len, dropout, user_encoder)
        self.objective = objective or InBatchSoftmax()
        # log p(item) for logQ correction of in-batch negatives (None: no correction).
        self.register_buffer("log_item_probability", log_item_probability, persistent=False)

    def training_loss(
        self,
        sequences: torch.Tensor,
        item_features: dict[str, torch.Tensor],
        encoded_ids: torch.Tensor,
        position_index: torch.Tensor,
    ) -> torch.Tensor:
        """Next-item loss over a batch of left-padded sequences [B, L+1].

        `encoded_ids` [U] are the item ids whose features are in `item_features` (0: a padding slot, never a
        candidate); `position_index` [B, L+1] points each non-pad position at its row in that encoding (-1 for
        padding). Padding is left out by label, never by boolean indexing (see train/objectives/registry.py).
        """
        candidates = self.item_encoder(item_features)  # [U, d]
        outputs = self.sequence_outputs(candidates, sequences, position_index)
        return self.loss_of(outputs, candidates, encoded_ids, sequences)

    def sequence_outputs(
        self, candidates: torch.Tensor, sequences: torch.Tensor, position_index: torch.Tensor
    ) -> SequenceOutputs:
        """The user encoder over the rows of `sequences` (their items' vectors looked up in `candidates`)."""
        embeddings = candidates[position_index.clamp(min=0)] * (position_index >= 0).unsqueeze(-1)
        if getattr(self.user_encoder, "masked_training", False):  # its own task (BERT4Rec's masked items)
            users, labels, history = self.user_encoder(embeddings, position_index >= 0, position_index)
            return SequenceOutputs(users, labels, history, None)
        # next-item prediction: each history position predicts the item after it
        inputs, targets = sequences[:, :-1], sequences[:, 1:]
        valid_input = inputs > 0
        history = embeddings[:, :-1]
        users = self.user_encoder(history, valid_input)  # [B, L, d]
        predict = valid_input & (targets > 0)  # [B, L]
        labels = position_index[:, 1:].masked_fill(~predict, IGNORED)  # [B, L]
        return SequenceOutputs(users, labels, history, predict)

    def loss_of(
        self, outputs: SequenceOutputs, candidates: torch.Tensor, encoded_ids: torch.Tensor, sequences: torch.Tensor
    ) -> torch.Tensor:
        """The objective over the user encoder's outputs for the rows of `sequences`."""
        scores = StepScores(
            outputs.users,
            candidates,
            outputs.labels,
            encoded_ids,
            sequences,
            self.log_item_probability,
            outputs.history,
            outputs.predict,
        )
        return self.objective.loss(scores)

    def user_states(self, history_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The user representation after the last (right-most) history item."""
        states: torch.Tensor = self.user_encoder(history_embeddings, valid)
        return states[:, -1]
