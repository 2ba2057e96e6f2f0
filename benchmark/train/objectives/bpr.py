"""Bayesian personalised ranking (Rendle et al., 2009): -log sigmoid(target score - negative score) for each of n
sampled negatives (negatives.py), averaged over the usable pairs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.suite.config import setting
from benchmark.train.objectives.negatives import sampled_scores
from benchmark.train.objectives.registry import Objective, StepScores, register_objective


@dataclass(frozen=True)
class BPROptions:
    negatives: int = setting(1, minimum=1, help="negatives per position, each a pair with the target")


@register_objective
class BPR(Objective):
    name = "bpr"
    description = "BPR: -log sigmoid(target - negative) over n sampled negatives per position (negatives)"
    Options = BPROptions

    def loss(self, scores: StepScores) -> torch.Tensor:
        sampled = sampled_scores(scores, self.options.negatives)
        pairs = F.softplus(sampled.negative - sampled.positive.unsqueeze(-1)) * sampled.usable
        return pairs.sum() / sampled.usable.sum().clamp(min=1)
