"""One cell, end to end: data, towers, method, training with profiling, evaluation -> one result row.

Each measuring component hands `run_cell` a frozen piece (`results/pieces.py`: timing, memory, energy, accuracy,
...) as it finishes; the row is assembled once from the pieces, also when the cell fails (OOM, bad input), so a
failed row still reports what was measured before the failure. The caller writes the row whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.data.dataset import ItemFeatures, SplitDataset, split_leave_one_out, steps_per_epoch
from benchmark.data.loader import default_num_workers, train_loader
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE
from benchmark.errors import DatasetError, NoMeasuredStepsError
from benchmark.formats.registry import load_raw_dataset
from benchmark.methods.registry import get_method_class
from benchmark.modalities.registry import get_modality, states_key
from benchmark.models.towers import Tower, count_parameters
from benchmark.profile.nvml import device_used_bytes, nvml_device_for_torch
from benchmark.profile.op_census import OpCensus
from benchmark.profile.peaks import dense_peak_tflops
from benchmark.profile.static_memory import static_memory
from benchmark.profile.step_cost import count_step_cost
from benchmark.profile.timers import StepClock, single_epoch_without_warmup, summarize_ms, sync_debug, synchronize
from benchmark.profile.training import TrainingProfiler
from benchmark.progress import ProgressSink, phase, step
from benchmark.results.pieces import (
    Accuracy,
    CacheFacts,
    CellRecord,
    Compilation,
    ContentionFigures,
    DataFacts,
    DeviceFacts,
    DevicePeak,
    Energy,
    LearningCurve,
    ModelFacts,
    StaticMemory,
    StepCost,
    StepOps,
    Timing,
    TrainingMemory,
    time_to_accuracy,
)
from benchmark.results.schema import EVAL_KS
from benchmark.suite.config import CellConfig
from benchmark.train.batches import DeviceBatches, ReadyBatch, input_preparation
from benchmark.train.compile import CompiledLoss
from benchmark.train.evaluate import (
    ModelScorer,
    PopularityScorer,
    RandomScorer,
    encode_all_items,
    metrics_from_ranks,
    rank_targets,
)
from benchmark.train.features import build_towers_and_features
from benchmark.train.hidden_state_build import cache_origin, find_caches
from benchmark.train.precision import DTYPES, autocast_factory, grad_scaler, resolve_device
from benchmark.train.recommender import Recommender
from benchmark.train.seeding import seed_everything
from benchmark.units import GIB

EARLY_STOPPING_METRIC = "ndcg@10"
# Devices where torch's fused AdamW runs (one multi-tensor kernel, step counters on the device).
FUSED_OPTIMIZER_DEVICES = ("cuda", "cpu")


def run_cell(
    config: CellConfig, row: dict[str, Any], progress: ProgressSink, built_caches: set[str] | None = None
) -> None:
    """Run one cell and put what it measured into `row`, assembled from the measuring components' pieces.

    The row is assembled even when the cell fails, from the pieces measured until then. `built_caches`: digests of
    the caches the launcher built for this cell (their build is this cell's cost).
    """
    record = CellRecord()
    try:
        _run_cell(config, record, progress, built_caches or set())
    finally:
        row.update(record.to_row())


def _run_cell(config: CellConfig, record: CellRecord, progress: ProgressSink, built_caches: set[str]) -> None:
    train_config, eval_config = config.train, config.eval
    setup_started = time.perf_counter()
    seed_everything(config.seed)
    device = resolve_device(train_config.device)
    warnings = record.warnings
    if device.type == "cpu" and train_config.precision == "fp16":
        warnings.append(
            "fp16 on a CPU runs emulated half precision, many times slower than fp32: these times measure the emulation"
        )
    nvml_device = nvml_device_for_torch(device.index or 0) if device.type == "cuda" else None
    if nvml_device is not None:
        if not nvml_device.resolved:
            warnings.append(
                f"NVML could not identify this GPU ({nvml_device.match}): no NVML memory, device memory or energy "
                "figures"
            )
        elif not nvml_device.energy_available:
            warnings.append("MIG slice: the energy counter covers the whole GPU, so no energy figure is recorded")
    resolved = nvml_device is not None and nvml_device.resolved
    baseline = device_used_bytes(nvml_device.nvml, nvml_device.handle) if nvml_device is not None and resolved else None
    record.add(
        DeviceFacts(nvml_device.match if nvml_device else None, baseline / GIB if baseline is not None else None)
    )
    record.add(device_peak(device, train_config.precision))

    progress(phase("data"))
    raw = load_raw_dataset(config.dataset)
    split = split_leave_one_out(raw, train_config.max_seq_len)
    record.add(DataFacts(split.n_items, len(split.train_sequences), split.dropped_users))
    if split.dropped_users:
        print(
            f"dataset '{config.dataset.name}': dropped {split.dropped_users} user sequence(s) with fewer than "
            f"{MIN_SEQUENCE_LENGTH} items ({RULE})",
            file=sys.stderr,
        )
    if train_config.batch_size > len(split.train_sequences):
        raise DatasetError(
            f"batch_size {train_config.batch_size} is larger than the {len(split.train_sequences)} training "
            f"sequences of '{config.dataset.name}': every step would be warm-up, nothing measured"
        )

    progress(phase("towers"))
    towers, tower_configs, features = build_towers_and_features(config.towers, config.seed, raw)
    tokens_per_item = text_tokens_per_item(features) if "text" in towers else None
    method = get_method_class(config.method.name)(config.method.options)
    off_device_params = 0
    if method.uses_cache:
        # The launcher built the caches in their own process: this one's CUDA context never sees the towers.
        caches = find_caches(method, towers, raw, tower_configs, train_config.precision)
        features = ItemFeatures({states_key(modality): cache.open_states() for modality, cache in caches.items()})
        origins = {cache_origin(cache, built_caches, device) for cache in caches.values()}
        origin = next(o for o in ("reused_other_hardware", "built", "reused") if o in origins)
        record.add(
            CacheFacts(
                origin,
                json.dumps([cache.built_on for cache in caches.values()], sort_keys=True),
                sum(cache.build_seconds for cache in caches.values()),
                sum(cache.size_bytes for cache in caches.values()),
            )
        )
        off_device_params = sum(count_parameters(tower)[1] for tower in towers.values())
    embed_dim = train_config.embed_dim
    item_encoder = method.build_item_encoder(towers, embed_dim)
    del towers  # a cached method's towers are done: they never reach the training device
    log_probability = None
    if train_config.logq_correction:
        probability = (split.item_counts + 1) / (split.item_counts.sum() + len(split.item_counts))
        log_probability = torch.log(torch.as_tensor(probability, dtype=torch.float32))
    model = Recommender(
        item_encoder,
        embed_dim,
        train_config.max_seq_len,
        train_config.user_layers,
        train_config.user_heads,
        train_config.dropout,
        log_probability,
        train_config.user_encoder,
    ).to(device)
    store_frozen_towers(model, train_config.precision, train_config.frozen_weights)
    trainable, total = count_parameters(model)
    total += off_device_params  # frozen towers count in the total even when only their cache is used
    record.add(ModelFacts(trainable, total, 100.0 * trainable / max(total, 1), time.perf_counter() - setup_started))

    evaluator = Evaluator(model, split, features, config, device, progress) if eval_config.enabled else None
    trainer = Trainer(model, split, features, config, device, nvml_device, evaluator, progress, tokens_per_item)
    if trainer.loss.fallback:
        print(f"warning: {trainer.loss.fallback}", file=sys.stderr)
    try:
        trainer.run()
    finally:
        record.add(trainer.timing, trainer.static_memory, trainer.step_cost, trainer.step_ops)
        record.add(*(trainer.measurement or ()))
        record.add(trainer.compilation, trainer.learning_curve())
        if trainer.loss.fallback:
            warnings.append(trainer.loss.fallback)
    if evaluator is not None:
        trainer.profiler.evaluation.start()
        record.add(evaluator.final())
        trainer.profiler.evaluation.stop()
    record.add(trainer.profiler.evaluation.figures())


def text_tokens_per_item(features: ItemFeatures) -> torch.Tensor | None:
    """Real (non-padding) text tokens of every item, for tokens per second (None when the features hold none); the
    padding item (row 0, what a static batch's padding slots encode) has none."""
    mask = get_modality("text").pooling_mask(features.tensors) if "text_mask" in features.tensors else None
    if mask is None:
        return None
    tokens = mask.sum(dim=1).to(torch.int64)
    tokens[0] = 0
    return tokens


def store_frozen_towers(model: nn.Module, precision: str, frozen_weights: str) -> int:
    """Store the towers nothing trains (an uncached side network's) in the compute precision; how many were.

    Under autocast a frozen fp32 weight is cast to bf16/fp16 again on every step (autocast keeps casts only of
    weights that train); a tower stored in that precision computes the same matmuls without the casts, in half the
    memory — what the hidden-state cache build does too. Towers with any trainable parameter (FFT, LoRA, Adapter,
    BitFit) keep fp32 weights: they are what the optimizer updates, or sit beside what it does.
    """
    if frozen_weights != "compute" or precision == "fp32":
        return 0
    dtype = DTYPES[precision]
    towers = [module for module in model.modules() if isinstance(module, Tower)]
    frozen = [tower for tower in towers if not any(p.requires_grad for p in tower.parameters())]
    for tower in frozen:
        tower.to(dtype)
    return len(frozen)


def device_peak(device: torch.device, precision: str) -> DevicePeak | None:
    """The GPU's dense peak for this precision, from the peak table (None on a CPU or an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = dense_peak_tflops(name, precision, tf32=torch.backends.cuda.matmul.allow_tf32)
    return DevicePeak(*peak) if peak is not None else DevicePeak(None, None)


class Evaluator:
    """Validation during training (early stopping on NDCG@10), then valid and test at the best epoch."""

    def __init__(
        self,
        model: Recommender,
        split: SplitDataset,
        features: ItemFeatures,
        config: CellConfig,
        device: torch.device,
        progress: ProgressSink,
    ):
        self.model, self.split, self.features, self.device, self.progress = model, split, features, device, progress
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
            self.best_state = {
                name: parameter.detach().to("cpu", copy=True)
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
            self.model.load_state_dict(self.best_state, strict=False)
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


class Trainer:
    def __init__(self, model, split, features, config, device, nvml_device, evaluator, progress, tokens_per_item=None):
        self.model, self.split, self.features, self.config = model, split, features, config
        self.tokens_per_item = tokens_per_item
        self.train_config = config.train
        self.device, self.evaluator, self.progress = device, evaluator, progress
        self.steps_per_epoch = steps_per_epoch(split, config.train.batch_size)
        self.timing: Timing | None = None  # set when training ends, however it ends
        self.measurement: tuple[TrainingMemory, Energy, ContentionFigures] | None = None
        self.static_memory: StaticMemory | None = None
        self.step_cost: StepCost | None = None
        self.step_ops: StepOps | None = None
        self.loss = CompiledLoss(
            model.training_loss,
            self.train_config.compile,
            self.train_config.compile_backend,
            device,
            self.train_config.compile_mode,
        )
        self.profiler = TrainingProfiler(device, nvml_device, self.train_config.nvml_hz)
        # The fused implementation updates every parameter in a few kernels, with its step counters on the device: the
        # default one launches a dozen kernels per parameter tensor and reads each step counter on the host.
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=self.train_config.lr,
            weight_decay=self.train_config.weight_decay,
            fused=device.type in FUSED_OPTIMIZER_DEVICES,
        )
        self.prepare = input_preparation(model, DTYPES[self.train_config.precision])
        self.autocast = autocast_factory(self.train_config.precision, device)
        self.scaler = grad_scaler(self.train_config.precision, device)
        workers = self.train_config.num_workers
        self.num_workers = default_num_workers(device) if workers is None else workers
        self.step_ms: list[float] = []
        self.warmup_ms: list[float] = []
        self.data_wait_ms: list[float] = []  # per measured step: how long the loop waited for its batch
        self.epoch_samples: list[float] = []
        self.epoch_wait_s: list[float] = []  # per complete epoch: total wait for batches
        self.losses: list[float] = []
        self.measured_sequences = 0
        self.step_items: list[int] = []  # items encoded by each measured step
        self.measured_tokens = 0
        self.measured_items = 0  # real (non-padding) items encoded by the measured steps
        self._census: OpCensus | None = None
        self.untimed_s = 0.0  # counting done inside an epoch outside the step clock, taken out of its time
        self.train_s = 0.0  # training time so far (epochs without evaluation and without the counting)
        self.step = 0
        self.stopped_early = False

    def planned_steps(self) -> int:
        planned = self.steps_per_epoch * self.train_config.epochs
        return min(planned, self.train_config.max_steps) if self.train_config.max_steps else planned

    def count_first_step(self, ready: ReadyBatch) -> None:
        """FLOPs and saved activations of the first batch, on an untimed forward + backward (see step_cost)."""
        counted_from = time.perf_counter()
        on_device = ready.wait()

        def loss() -> torch.Tensor:
            with self.autocast():
                return self.model.training_loss(
                    on_device.sequences, on_device.features, on_device.encoded_ids, on_device.position_index
                )

        self.step_cost = count_step_cost(self.model, loss, int(on_device.encoded_ids.numel()))
        synchronize(self.device)
        self.untimed_s += time.perf_counter() - counted_from

    def census_step(self) -> contextlib.AbstractContextManager[Any]:
        """The last warm-up step runs under an operator census (kernels, casts, synchronisations): the very code of a
        timed step, on a step that is not timed. Not with torch.compile: the census cannot see inside compiled code."""
        if self.step != self.train_config.warmup_steps - 1 or self.loss.active:
            return contextlib.nullcontext()
        census = OpCensus()
        self._census = census
        return census

    def train_step(self, ready: ReadyBatch, wait_ms: float) -> None:
        if self.step == 0:
            self.count_first_step(ready)
        if self.step == self.train_config.warmup_steps:
            self.profiler.begin_energy()
        graphs = self.loss.graphs()
        host = ready.host
        with self.census_step(), StepClock(self.device) as clock, sync_debug(self.device):
            batch = ready.wait()
            with self.autocast():
                loss = self.loss(batch.sequences, batch.features, batch.encoded_ids, batch.position_index)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)  # fused AdamW takes the scale and the inf check on the device
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
        self.step += 1
        if self._census is not None and self.step_ops is None:
            result = self._census.result
            self.step_ops = StepOps(result.kernels, result.casts, result.sync_count, result.sync_summary())
        if self.step == 1:  # outside the clock: gradients and optimizer state exist from here on
            counted_from = time.perf_counter()
            self.static_memory = static_memory(self.model, self.optimizer)
            self.untimed_s += time.perf_counter() - counted_from
        self.losses.append(float(loss.detach()))
        compiled = self.loss.graphs() > graphs
        if compiled:
            self.loss.compile_step_ms.append(clock.elapsed_ms)
        if self.step <= self.train_config.warmup_steps:
            self.warmup_ms.append(clock.elapsed_ms)
        elif not compiled:  # a step that compiled measures the compiler: its time is compile_s, not a step
            self.step_ms.append(clock.elapsed_ms)
            self.data_wait_ms.append(wait_ms)
            self.measured_sequences += host.real_sequences
            self.step_items.append(int(host.encoded_ids.numel()))
            self.measured_items += host.real_items
            if self.tokens_per_item is not None:
                self.measured_tokens += int(self.tokens_per_item[host.encoded_ids].sum())

    def run(self) -> None:
        planned = self.planned_steps()
        self.progress(phase("train", planned))
        loader = train_loader(
            self.split,
            self.features,
            self.train_config.batch_size,
            self.train_config.unique_items,
            np.random.default_rng(self.config.seed),
            self.num_workers,
            self.device,
            self.train_config.step_shapes,
        )
        epochs, every = self.train_config.epochs, self.config.eval.every
        self.profiler.start()
        self.model.train()
        try:
            for epoch in range(1, epochs + 1):
                synchronize(self.device)
                epoch_started = time.perf_counter()
                self.untimed_s = 0.0
                waited_s = 0.0
                cut = False
                batches = DeviceBatches(iter(loader), self.device, self.prepare)
                while True:
                    asked = time.perf_counter()
                    batch = next(batches, None)
                    wait_ms = (time.perf_counter() - asked) * 1000.0
                    if batch is None:
                        break
                    waited_s += wait_ms / 1000.0
                    self.train_step(batch, wait_ms)
                    self.progress(step(self.step, planned, self.losses[-1]))
                    if self.train_config.max_steps and self.step >= self.train_config.max_steps:
                        cut = True
                        break
                del batches  # a batch prepared ahead for a step that will not run is not evaluation's memory
                synchronize(self.device)
                epoch_s = time.perf_counter() - epoch_started - self.untimed_s
                self.train_s += epoch_s
                if not cut:
                    self.epoch_samples.append(epoch_s)
                    self.epoch_wait_s.append(waited_s)
                last = cut or epoch == epochs
                if self.evaluator is not None and (epoch % every == 0 or last):
                    self.profiler.pause()  # evaluation is neither training time, memory nor energy
                    stop = self.evaluator.validate(epoch, self.train_s)
                    self.profiler.resume()  # its memory is released before the next training step
                    if stop and not last:
                        self.stopped_early = True
                        break
                if last:
                    break
        finally:
            self.measurement = self.profiler.stop()
            del loader  # persistent workers end here, after the contention reading counted them as ours
            self.timing = self.measured_timing()
        if not self.step_ms:
            raise NoMeasuredStepsError(
                f"no measured steps: {self.step} step(s) ran and all were warm-up "
                f"(warmup_steps={self.train_config.warmup_steps}, "
                f"{self.steps_per_epoch} step(s) per epoch x {epochs} epoch(s), "
                f"max_steps={self.train_config.max_steps}); "
                "lower warmup_steps or run more steps"
            )

    @property
    def compilation(self) -> Compilation | None:
        return self.loss.figures(summarize_ms(self.step_ms)["median"])

    def learning_curve(self) -> LearningCurve | None:
        if self.evaluator is None or not self.evaluator.curve:
            return None
        train_s, scores = (list(values) for values in zip(*self.evaluator.curve, strict=True))
        fraction = self.config.eval.tta_fraction
        return LearningCurve(scores, train_s, fraction, time_to_accuracy(scores, train_s, fraction))

    def measured_timing(self) -> Timing:
        per_epoch = self.steps_per_epoch
        summary = summarize_ms(self.step_ms)
        wait = summarize_ms(self.data_wait_ms)
        measured_s = sum(self.step_ms) / 1000.0
        epoch_s: float | None = None
        epoch_kind: str | None = None
        wait_per_epoch: float | None = None
        if len(self.epoch_samples) > 1:
            # The first epoch carries the warm-up (allocator growth, kernel selection, worker start); later ones do not.
            epoch_s, epoch_kind = float(np.median(self.epoch_samples[1:])), "measured"
            wait_per_epoch = float(np.median(self.epoch_wait_s[1:]))
        elif self.epoch_samples:
            epoch_kind = "measured"
            epoch_s = single_epoch_without_warmup(self.epoch_samples[0], self.warmup_ms, summary["median"])
            wait_per_epoch = self.epoch_wait_s[0]
        elif summary["median"] is not None and wait["median"] is not None:
            # Like a measured epoch, the estimate includes the wait for batches, not only the compute step.
            wait_per_epoch = wait["median"] * per_epoch / 1000.0
            epoch_s, epoch_kind = summary["median"] * per_epoch / 1000.0 + wait_per_epoch, "estimated"
        return Timing(
            steps_per_epoch=per_epoch,
            num_workers=self.num_workers,
            step_ms=self.step_ms,
            warmup_ms=self.warmup_ms,
            measured_steps=len(self.step_ms),
            step_ms_median=summary["median"],
            step_ms_p10=summary["p10"],
            step_ms_p90=summary["p90"],
            epoch_s_samples=self.epoch_samples,
            epochs_run=len(self.epoch_samples),
            epochs_trained=self.step / per_epoch if per_epoch else None,
            data_wait_ms=self.data_wait_ms,
            train_loss=self.losses,
            final_loss=self.losses[-1] if self.losses else None,
            stopped_early=self.stopped_early,
            samples_per_s=self.measured_sequences / measured_s if measured_s else None,
            items_per_s=self.measured_items / measured_s if measured_s else None,
            tokens_per_s=self.measured_tokens / measured_s if measured_s and self.tokens_per_item is not None else None,
            step_items_median=float(np.median(self.step_items)) if self.step_items else None,
            epoch_s=epoch_s,
            epoch_kind=epoch_kind,
            data_wait_s_per_epoch=wait_per_epoch,
            data_share=min(wait_per_epoch / epoch_s, 1.0) if epoch_s and wait_per_epoch is not None else None,
        )
