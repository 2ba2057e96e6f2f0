"""Accuracy during and after training: validation each epoch with early stopping on NDCG@10, then valid and test at
the best epoch (and the popularity and random baselines on test)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from benchmark.profile.static_memory import local_tensor
from benchmark.profile.timers import synchronize
from benchmark.progress import phase
from benchmark.results.pieces import (
    Accuracy,
)
from benchmark.results.schema import EVAL_KS
from benchmark.train.evaluate import (
    ModelScorer,
    PopularityScorer,
    RandomScorer,
    encode_all_items,
    metrics_from_ranks,
    rank_targets,
)
from benchmark.train.precision import autocast_factory
from benchmark.train.setup import TrainingSetup

EARLY_STOPPING_METRIC = "ndcg@10"


class Evaluator:
    """Validation during training (early stopping on NDCG@10), then valid and test at the best epoch."""

    def __init__(self, setup: TrainingSetup) -> None:
        config, device = setup.config, setup.device
        self.model, self.split, self.features, self.device = setup.model, setup.split, setup.features, device
        self.progress, self.world = setup.progress, setup.world
        self.eval_config = config.eval
        self.seed = config.seed
        self.ks = [k for k in self.eval_config.ks if k in EVAL_KS]
        self.autocast = autocast_factory(config.train.precision, device)
        self.best_score = -1.0
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.seconds = 0.0
        self.curve: list[tuple[float, float]] = []  # (training seconds so far, validation NDCG@10)

    def _metrics(self, scorer: Any, histories: list[np.ndarray], targets: np.ndarray) -> dict[str, float]:
        ranks = rank_targets(
            scorer,
            histories,
            targets,
            self.split.n_items,
            self.split.max_seq_len,
            self.device,
            self.eval_config.batch_size,
            world=self.world,
        )
        return metrics_from_ranks(ranks, self.ks)

    def _model_scorer(self) -> ModelScorer:
        self.model.eval()
        table = encode_all_items(
            self.model.item_encoder,
            self.features,
            self.split.n_items,
            self.device,
            self.eval_config.item_batch_size,
            self.autocast,
            self.world,
        )
        return ModelScorer(self.model.user_states, table, self.autocast)

    @torch.no_grad()
    def validate(self, epoch: int, train_s: float) -> bool:
        """Evaluate on validation after `epoch` (`train_s` seconds of training so far); True when training should
        stop (patience exhausted)."""
        self.progress(phase(f"validate (epoch {epoch})"))
        started = time.perf_counter()
        score = self._metrics(self._model_scorer(), self.split.valid_history, self.split.valid_target).get(
            EARLY_STOPPING_METRIC, 0.0
        )
        self.curve.append((train_s, score))
        if score > self.best_score:
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
            # Only trainable parameters change: a CPU copy of them is the best model (frozen towers stay shared).
            # Under FSDP each rank keeps its own shard.
            self.best_state = {
                name: local_tensor(parameter).detach().to("cpu", copy=True)
                for name, parameter in self.model.named_parameters()
                if parameter.requires_grad
            }
        else:
            self.since_best += 1
        synchronize(self.device)
        self.seconds += time.perf_counter() - started
        self.model.train()
        patience = self.eval_config.patience
        return patience > 0 and self.since_best >= patience

    @torch.no_grad()
    def final(self) -> Accuracy:
        """Valid and test metrics at the best epoch (and the baselines on test)."""
        self.progress(phase("test"))
        metrics: dict[str, float] = {}
        started = time.perf_counter()
        if self.best_state is not None:
            for name, parameter in self.model.named_parameters():
                if name in self.best_state:
                    local_tensor(parameter).copy_(self.best_state[name])
        scorer = self._model_scorer()
        split = self.split
        for name, histories, targets in (
            ("valid", split.valid_history, split.valid_target),
            ("test", split.test_history, split.test_target),
        ):
            for metric, value in self._metrics(scorer, histories, targets).items():
                metrics[f"{name}_{metric}"] = value
            if self.eval_config.baselines and name == "test":
                for baseline, baseline_scorer in (
                    ("pop", PopularityScorer(split.item_counts, self.device)),
                    ("random", RandomScorer(self.seed)),
                ):
                    for metric, value in self._metrics(baseline_scorer, histories, targets).items():
                        metrics[f"{baseline}_test_{metric}"] = value
        synchronize(self.device)
        self.seconds += time.perf_counter() - started
        return Accuracy(metrics, self.seconds, self.best_epoch)
