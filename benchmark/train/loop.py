"""One cell, end to end: data, towers, method, training with profiling, evaluation -> one result row.

`run_cell` fills `row` as it goes, so a cell that fails (OOM, bad input) still reports what it
measured before the failure; the caller writes the row whatever happens.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import numpy as np
import torch

from benchmark.data.collate import collate_train_batch
from benchmark.data.dataset import ItemFeatures, SplitDataset, iterate_train_batches, load_raw_dataset, split_leave_one_out, steps_per_epoch
from benchmark.methods.registry import get_method_class
from benchmark.models.towers import count_parameters
from benchmark.profile.memory import GIB
from benchmark.profile.nvml import device_used_bytes, nvml_handle_for_torch_device
from benchmark.profile.timers import StepClock, single_epoch_without_warmup, summarize_ms, synchronize
from benchmark.profile.training import TrainingProfiler
from benchmark.results.schema import EVAL_KS
from benchmark.train.cache_build import ensure_caches
from benchmark.train.evaluate import ModelScorer, PopularityScorer, RandomScorer, encode_all_items, metrics_from_ranks, rank_targets
from benchmark.train.features import build_towers_and_features
from benchmark.train.precision import autocast_factory, grad_scaler, resolve_device
from benchmark.train.recommender import Recommender

Progress = Callable[[dict[str, Any]], None]
EARLY_STOPPING_METRIC = "ndcg@10"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_cell(config: dict[str, Any], row: dict[str, Any], progress: Progress) -> None:
    train_config, eval_config = config["train"], config["eval"]
    setup_started = time.perf_counter()
    seed_everything(config["seed"])
    device = resolve_device(train_config["device"])
    nvml, nvml_device = nvml_handle_for_torch_device(0) if device.type == "cuda" else (None, None)
    baseline = device_used_bytes(nvml, nvml_device) if nvml_device is not None else None
    row["nvml_baseline_gib"] = baseline / GIB if baseline is not None else None

    progress({"event": "phase", "phase": "data"})
    raw = load_raw_dataset(config["dataset"])
    split = split_leave_one_out(raw, train_config["max_seq_len"])
    row["n_items"], row["n_train_sequences"] = split.n_items, len(split.train_sequences)

    progress({"event": "phase", "phase": "towers"})
    towers, tower_configs, features = build_towers_and_features(config, raw)
    method = get_method_class(config["method"]["name"])(config["method"]["options"])
    off_device_params = 0
    if method.uses_cache:
        caches = ensure_caches(method, towers, raw, features, tower_configs, train_config["precision"], device,
                               eval_config["item_batch_size"], progress)
        features = ItemFeatures({f"{modality}_states": cache.open_states() for modality, (cache, _) in caches.items()})
        # The build cost is the cache's, whoever paid it: the manifest keeps the original build time.
        row["cache_build_s"] = sum(cache.build_seconds for cache, _ in caches.values())
        row["cache_bytes"] = sum(cache.size_bytes for cache, _ in caches.values())
        off_device_params = sum(count_parameters(tower)[1] for tower in towers.values())
    embed_dim = train_config["embed_dim"]
    item_encoder = method.build_item_encoder(towers, embed_dim)
    del towers  # a cached method's towers are done: they never reach the training device
    log_probability = None
    if train_config["logq_correction"]:
        probability = (split.item_counts + 1) / (split.item_counts.sum() + len(split.item_counts))
        log_probability = torch.log(torch.as_tensor(probability, dtype=torch.float32))
    model = Recommender(item_encoder, embed_dim, train_config["max_seq_len"], train_config["user_layers"],
                        train_config["user_heads"], train_config["dropout"], log_probability).to(device)
    row["trainable_params"], row["total_params"] = count_parameters(model)
    row["total_params"] += off_device_params  # frozen towers count in the total even when only their cache is used
    row["trainable_pct"] = 100.0 * row["trainable_params"] / max(row["total_params"], 1)
    row["setup_s"] = time.perf_counter() - setup_started

    evaluator = Evaluator(model, split, features, config, device, progress) if eval_config["enabled"] else None
    Trainer(model, split, features, config, device, nvml, nvml_device, evaluator, row, progress).run()
    if row["epoch_s"] is not None:
        row["epoch_amortized_s"] = row["epoch_s"] + (row["cache_build_s"] or 0.0) / train_config["epochs"]
    if evaluator is not None:
        evaluator.final(row)


class Evaluator:
    """Validation during training (early stopping on NDCG@10), then valid and test at the best epoch."""

    def __init__(self, model: Recommender, split: SplitDataset, features: ItemFeatures, config: dict[str, Any],
                 device: torch.device, progress: Progress):
        self.model, self.split, self.features, self.device, self.progress = model, split, features, device, progress
        self.eval_config = config["eval"]
        self.seed = config["seed"]
        self.ks = [k for k in self.eval_config["ks"] if k in EVAL_KS]
        self.autocast = autocast_factory(config["train"]["precision"], device)
        self.best_score = -1.0
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.seconds = 0.0

    def _metrics(self, scorer: Any, histories: list[np.ndarray], targets: np.ndarray) -> dict[str, float]:
        ranks = rank_targets(scorer, histories, targets, self.split.n_items, self.split.max_seq_len, self.device,
                             self.eval_config["batch_size"])
        return metrics_from_ranks(ranks, self.ks)

    def _model_scorer(self) -> ModelScorer:
        self.model.eval()
        table = encode_all_items(self.model.item_encoder, self.features, self.split.n_items, self.device,
                                 self.eval_config["item_batch_size"], self.autocast)
        return ModelScorer(self.model.user_states, table, self.autocast)

    @torch.no_grad()
    def validate(self, epoch: int) -> bool:
        """Evaluate on validation after `epoch`; True when training should stop (patience exhausted)."""
        self.progress({"event": "phase", "phase": f"validate (epoch {epoch})"})
        started = time.perf_counter()
        score = self._metrics(self._model_scorer(), self.split.valid_history, self.split.valid_target).get(EARLY_STOPPING_METRIC, 0.0)
        if score > self.best_score:
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
            # Only trainable parameters change: a CPU copy of them is the best model (frozen towers stay shared).
            self.best_state = {name: parameter.detach().to("cpu", copy=True)
                               for name, parameter in self.model.named_parameters() if parameter.requires_grad}
        else:
            self.since_best += 1
        synchronize(self.device)
        self.seconds += time.perf_counter() - started
        self.model.train()
        patience = self.eval_config["patience"]
        return patience > 0 and self.since_best >= patience

    @torch.no_grad()
    def final(self, row: dict[str, Any]) -> None:
        self.progress({"event": "phase", "phase": "test"})
        started = time.perf_counter()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state, strict=False)
        scorer = self._model_scorer()
        split = self.split
        for name, histories, targets in (("valid", split.valid_history, split.valid_target), ("test", split.test_history, split.test_target)):
            for metric, value in self._metrics(scorer, histories, targets).items():
                row[f"{name}_{metric}"] = value
            if self.eval_config["baselines"] and name == "test":
                for baseline, baseline_scorer in (("pop", PopularityScorer(split.item_counts, self.device)), ("random", RandomScorer(self.seed))):
                    for metric, value in self._metrics(baseline_scorer, histories, targets).items():
                        column = f"{baseline}_test_{metric}"
                        if column in row:
                            row[column] = value
        synchronize(self.device)
        self.seconds += time.perf_counter() - started
        row["eval_s"] = self.seconds
        row["best_epoch"] = self.best_epoch


class Trainer:
    def __init__(self, model, split, features, config, device, nvml, nvml_device, evaluator, row, progress):
        self.model, self.split, self.features, self.config = model, split, features, config
        self.train_config = config["train"]
        self.device, self.evaluator, self.row, self.progress = device, evaluator, row, progress
        self.profiler = TrainingProfiler(device, nvml, nvml_device, self.train_config["nvml_hz"])
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=self.train_config["lr"],
                                           weight_decay=self.train_config["weight_decay"])
        self.autocast = autocast_factory(self.train_config["precision"], device)
        self.scaler = grad_scaler(self.train_config["precision"], device)
        self.step_ms: list[float] = []
        self.warmup_ms: list[float] = []
        self.epoch_samples: list[float] = []
        self.losses: list[float] = []
        self.measured_sequences = 0
        self.step = 0
        self.stopped_early = False

    def planned_steps(self) -> int:
        planned = self.row["steps_per_epoch"] * self.train_config["epochs"]
        return min(planned, self.train_config["max_steps"]) if self.train_config["max_steps"] else planned

    def train_step(self, sequences: torch.Tensor) -> None:
        batch = collate_train_batch(sequences, self.features, self.train_config["unique_items"])
        if self.step == self.train_config["warmup_steps"]:
            self.profiler.begin_energy()
        with StepClock(self.device) as clock:
            batch = batch.to(self.device)
            with self.autocast():
                loss = self.model.training_loss(batch.sequences, batch.features, batch.encoded_ids, batch.position_index)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
        self.step += 1
        self.losses.append(float(loss.detach()))
        if self.step <= self.train_config["warmup_steps"]:
            self.warmup_ms.append(clock.elapsed_ms)
        else:
            self.step_ms.append(clock.elapsed_ms)
            self.measured_sequences += sequences.shape[0]

    def run(self) -> None:
        self.row["steps_per_epoch"] = steps_per_epoch(self.split, self.train_config["batch_size"])
        planned = self.planned_steps()
        self.progress({"event": "phase", "phase": "train", "total_steps": planned})
        generator = np.random.default_rng(self.config["seed"])
        epochs, every = self.train_config["epochs"], self.config["eval"]["every"]
        self.profiler.start()
        self.model.train()
        try:
            for epoch in range(1, epochs + 1):
                synchronize(self.device)
                epoch_started = time.perf_counter()
                cut = False
                for sequences in iterate_train_batches(self.split, self.train_config["batch_size"], generator):
                    self.train_step(sequences)
                    self.progress({"event": "step", "step": self.step, "total_steps": planned, "loss": self.losses[-1]})
                    if self.train_config["max_steps"] and self.step >= self.train_config["max_steps"]:
                        cut = True
                        break
                synchronize(self.device)
                if not cut:
                    self.epoch_samples.append(time.perf_counter() - epoch_started)
                last = cut or epoch == epochs
                if self.evaluator is not None and (epoch % every == 0 or last):
                    self.profiler.pause()  # evaluation is neither training time, memory nor energy
                    stop = self.evaluator.validate(epoch)
                    self.profiler.resume()
                    if stop and not last:
                        self.stopped_early = True
                        break
                if last:
                    break
        finally:
            self.row.update(self.profiler.stop())
            self.record_timing()

    def record_timing(self) -> None:
        row, per_epoch = self.row, self.row["steps_per_epoch"]
        summary = summarize_ms(self.step_ms)
        row.update(step_ms=self.step_ms, warmup_ms=self.warmup_ms, measured_steps=len(self.step_ms),
                   step_ms_median=summary["median"], step_ms_p10=summary["p10"], step_ms_p90=summary["p90"],
                   epoch_s_samples=self.epoch_samples, epochs_run=len(self.epoch_samples), train_loss=self.losses,
                   final_loss=self.losses[-1] if self.losses else None, stopped_early=self.stopped_early)
        row["samples_per_s"] = self.measured_sequences / (sum(self.step_ms) / 1000.0) if self.step_ms else None
        if len(self.epoch_samples) > 1:
            # The first epoch carries the warm-up (allocator growth, kernel selection); later ones do not.
            row["epoch_s"], row["epoch_kind"] = float(np.median(self.epoch_samples[1:])), "measured"
        elif self.epoch_samples:
            row["epoch_s"], row["epoch_kind"] = single_epoch_without_warmup(self.epoch_samples[0], self.warmup_ms, summary["median"]), "measured"
        elif summary["median"] is not None:
            row["epoch_s"], row["epoch_kind"] = summary["median"] * per_epoch / 1000.0, "estimated"
        if row["energy_j_measured"] is not None and self.step_ms:
            row["energy_j_per_epoch"] = row["energy_j_measured"] / len(self.step_ms) * per_epoch
