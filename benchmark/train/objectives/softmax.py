"""In-batch softmax (the IISAN code's objective; mmbench's default): every item the step encoded is a candidate for
every position, the user's own items and padding masked out, optionally corrected by log popularity (logQ)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.train.objectives.registry import IGNORED, Objective, StepScores, register_objective


@register_objective
class InBatchSoftmax(Objective):
    name = "softmax"
    description = "in-batch softmax over every encoded item, own history masked (train.logq_correction: logQ)"

    def loss(self, scores: StepScores) -> torch.Tensor:
        """Every position is scored and padding is left out by label (`ignore_index`) and by mask, never by boolean
        indexing (which sizes its result from the device's data: a synchronisation)."""
        labels, encoded_ids = scores.labels, scores.encoded_ids
        logits = scores.users.flatten(0, 1) @ scores.candidates.T  # [B*L, U]
        if scores.log_item_probability is not None:
            logits = logits - scores.log_item_probability[encoded_ids].unsqueeze(0)
        # Own-history masking: an item of the user's own sequence is not a negative (the label column stays); nor
        # is a padding slot. Rows that predict nothing keep finite logits (an all -inf row has no gradient).
        columns = torch.arange(encoded_ids.shape[0], device=encoded_ids.device)
        excluded = scores.excluded_candidates()
        mask = excluded.unsqueeze(1) & (columns != labels.unsqueeze(-1)) & scores.predicting.unsqueeze(-1)
        logits = logits.float().masked_fill(mask.flatten(0, 1), float("-inf"))
        return F.cross_entropy(logits, labels.flatten(), ignore_index=IGNORED)
