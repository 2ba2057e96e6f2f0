"""The recommender: item encoder (from the method) -> SASRec -> in-batch softmax with own-history masking."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.train.sasrec import SASRec


class Recommender(nn.Module):
    def __init__(
        self,
        item_encoder: nn.Module,
        embed_dim: int,
        max_seq_len: int,
        layers: int,
        heads: int,
        dropout: float,
        log_item_probability: torch.Tensor | None = None,
    ):
        super().__init__()
        self.item_encoder = item_encoder
        self.user_encoder = SASRec(embed_dim, layers, heads, max_seq_len, dropout)
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

        `encoded_ids` [U] are the item ids whose features are in `item_features`; `position_index`
        [B, L+1] points each non-pad position at its row in that encoding (-1 for padding).
        """
        candidates = self.item_encoder(item_features)  # [U, d]
        embeddings = candidates[position_index.clamp(min=0)] * (position_index >= 0).unsqueeze(-1)
        inputs, targets = sequences[:, :-1], sequences[:, 1:]
        valid_input = inputs > 0
        users = self.user_encoder(embeddings[:, :-1], valid_input)  # [B, L, d]
        predict = valid_input & (targets > 0)
        query = users[predict]  # [P, d]
        label = position_index[:, 1:][predict]  # [P]
        logits = query @ candidates.T  # [P, U]
        if self.log_item_probability is not None:
            logits = logits - self.log_item_probability[encoded_ids].unsqueeze(0)
        # Own-history masking: an item of the user's own sequence is not a negative (the label column stays).
        row_of = torch.arange(sequences.shape[0], device=sequences.device).unsqueeze(1).expand_as(targets)[predict]
        in_history = (encoded_ids.view(1, 1, -1) == sequences.unsqueeze(-1)).any(dim=1)  # [B, U]
        mask = in_history[row_of]
        mask[torch.arange(len(label), device=label.device), label] = False
        logits = logits.float().masked_fill(mask, float("-inf"))
        return F.cross_entropy(logits, label)

    def user_states(self, history_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The user representation after the last (right-most) history item."""
        return self.user_encoder(history_embeddings, valid)[:, -1]
