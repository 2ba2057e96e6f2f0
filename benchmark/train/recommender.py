"""The recommender: item encoder (from the method) -> SASRec -> in-batch softmax with own-history masking."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.train.sasrec import SASRec

# Label of a position that predicts nothing (padding): cross-entropy skips it.
IGNORED = -100


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
    ):
        super().__init__()
        self.item_encoder = item_encoder
        self.user_encoder = SASRec(embed_dim, layers, heads, max_seq_len, dropout, user_encoder)
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
        padding).

        Every position is scored and padding is left out by label (`ignore_index`) and by mask, never by boolean
        indexing: a boolean index sizes its result from the device's data, so the host would wait for the towers to
        finish before it could queue the rest of the step (on a GPU, a launch-bound tail and backward).
        """
        candidates = self.item_encoder(item_features)  # [U, d]
        embeddings = candidates[position_index.clamp(min=0)] * (position_index >= 0).unsqueeze(-1)
        inputs, targets = sequences[:, :-1], sequences[:, 1:]
        valid_input = inputs > 0
        users = self.user_encoder(embeddings[:, :-1], valid_input)  # [B, L, d]
        predict = valid_input & (targets > 0)  # [B, L]
        labels = position_index[:, 1:].masked_fill(~predict, IGNORED)  # [B, L]
        logits = users.flatten(0, 1) @ candidates.T  # [B*L, U]
        if self.log_item_probability is not None:
            logits = logits - self.log_item_probability[encoded_ids].unsqueeze(0)
        # Own-history masking: an item of the user's own sequence is not a negative (the label column stays); nor
        # is a padding slot. Rows that predict nothing keep finite logits (an all -inf row has no gradient).
        in_history = (encoded_ids.view(1, 1, -1) == sequences.unsqueeze(-1)).any(dim=1)  # [B, U]
        excluded = in_history | (encoded_ids == 0).unsqueeze(0)
        columns = torch.arange(encoded_ids.shape[0], device=encoded_ids.device)
        mask = excluded.unsqueeze(1) & (columns != labels.unsqueeze(-1)) & predict.unsqueeze(-1)  # [B, L, U]
        logits = logits.float().masked_fill(mask.flatten(0, 1), float("-inf"))
        return F.cross_entropy(logits, labels.flatten(), ignore_index=IGNORED)

    def user_states(self, history_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The user representation after the last (right-most) history item."""
        states: torch.Tensor = self.user_encoder(history_embeddings, valid)
        return states[:, -1]
