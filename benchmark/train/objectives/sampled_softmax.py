"""Sampled softmax: each position's target against n sampled negatives (negatives.py), cross-entropy over the n + 1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.suite.config import setting
from benchmark.train.objectives.negatives import sampled_scores
from benchmark.train.objectives.registry import Objective, StepScores, register_objective


@dataclass(frozen=True)
class SampledSoftmaxOptions:
    negatives: int = setting(64, minimum=1, help="negatives drawn per position from the items the step encoded")


@register_objective
class SampledSoftmax(Objective):
    name = "sampled_softmax"
    description = "softmax of the target against n negatives drawn from the step's encoded items (negatives)"
    Options = SampledSoftmaxOptions

    def loss(self, scores: StepScores) -> torch.Tensor:
        sampled = sampled_scores(scores, self.options.negatives)
        negative = sampled.negative.masked_fill(~sampled.usable, float("-inf"))
        logits = torch.cat([sampled.positive.unsqueeze(-1), negative], dim=-1).flatten(0, 1)
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        per_position = F.cross_entropy(logits, target, reduction="none").view_as(sampled.positive)
        return (per_position * sampled.predicting).sum() / sampled.positions
