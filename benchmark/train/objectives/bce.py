"""Binary cross-entropy with sampled negatives (MMSR's objective, SASRec's original): the target scored as a positive,
each of n negatives (negatives.py; one by default, as MMSR) as a negative, summed per position, averaged over
positions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.suite.config import setting
from benchmark.train.objectives.negatives import sampled_scores
from benchmark.train.objectives.registry import Objective, StepScores, register_objective


@dataclass(frozen=True)
class BCEOptions:
    negatives: int = setting(1, minimum=1, help="negatives per position (MMSR: one)")


@register_objective
class BinaryCrossEntropy(Objective):
    name = "bce"
    description = "binary cross-entropy: the target against n sampled negatives (negatives; MMSR: 1)"
    Options = BCEOptions

    def loss(self, scores: StepScores) -> torch.Tensor:
        sampled = sampled_scores(scores, self.options.negatives)
        positive = F.softplus(-sampled.positive) * sampled.predicting  # -log sigmoid(s)
        negative = F.softplus(sampled.negative) * sampled.usable  # -log (1 - sigmoid(s))
        return (positive.sum() + negative.sum()) / sampled.positions
