"""Sampled negatives for the objectives that score a few of them per position (sampled softmax, BCE, BPR).

Negatives are drawn uniformly, with replacement, from the items the step encoded: other positions' and other
users' items, as in-batch softmax uses them, so a negative costs no tower pass. (MMSR draws them from the whole
catalogue, which would add their items to every step's encoding.) A draw that lands on a padding slot, the
position's target or one of the user's own items is masked out of the loss, not drawn again: redrawing would size
the work from the device's data, a synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.train.objectives.registry import StepScores


@dataclass(frozen=True)
class SampledScores:
    positive: torch.Tensor  # [B, L]: each position's score of its target (float32)
    negative: torch.Tensor  # [B, L, n]: its scores of the drawn negatives (float32)
    usable: torch.Tensor  # [B, L, n]: the draws that count (a real other item at a predicting position)
    predicting: torch.Tensor  # [B, L]

    @property
    def positions(self) -> torch.Tensor:
        """The number of predicting positions, at least 1 (a divisor on the device)."""
        return self.predicting.sum().clamp(min=1)


def sampled_scores(scores: StepScores, negatives: int) -> SampledScores:
    users, candidates, labels = scores.users, scores.candidates, scores.labels
    batch, length = labels.shape
    drawn = torch.randint(0, candidates.shape[0], (batch, length, negatives), device=labels.device)
    excluded = scores.excluded_candidates().gather(1, drawn.flatten(1)).view(batch, length, negatives)
    predicting = scores.predicting
    usable = ~excluded & (drawn != labels.unsqueeze(-1)) & predicting.unsqueeze(-1)
    positive = (users * candidates[labels.clamp(min=0)]).sum(-1).float()
    negative = (users.unsqueeze(2) * candidates[drawn]).sum(-1).float()
    if scores.log_item_probability is not None:
        log_probability = scores.log_item_probability
        positive = positive - log_probability[scores.encoded_ids[labels.clamp(min=0)]]
        negative = negative - log_probability[scores.encoded_ids[drawn]]
    return SampledScores(positive, negative, usable, predicting)
