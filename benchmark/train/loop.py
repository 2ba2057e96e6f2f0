"""One cell, end to end: data, towers, method, training with profiling, evaluation -> one result row.

Each measuring component hands `run_cell` a frozen piece (`results/pieces.py`: timing, memory, energy, accuracy,
...) as it finishes; the row is assembled once from the pieces, also when the cell fails (OOM, bad input), so a
failed row still reports what was measured before the failure. The caller writes the row whatever happens.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch
from torch import nn

from benchmark.data.dataset import ItemFeatures, SplitDataset, split_leave_one_out
from benchmark.data.raw import RawDataset
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE
from benchmark.errors import DatasetError
from benchmark.methods.end_to_end import checkpointing_mode
from benchmark.modalities.registry import states_key
from benchmark.models.towers import count_parameters
from benchmark.profile.nvml import NvmlDevice, device_used_bytes, nvml_device_for_torch
from benchmark.progress import ProgressSink
from benchmark.results.pieces import (
    CacheFacts,
    CellRecord,
    DataFacts,
    DeviceFacts,
    ModelFacts,
)
from benchmark.suite.config import CellConfig, TrainConfig, build
from benchmark.train.cell_plan import CellPlan, assemble, read_data
from benchmark.train.distributed.world import start_world
from benchmark.train.evaluator import Evaluator
from benchmark.train.hidden_state_build import cache_origin, find_caches
from benchmark.train.model_setup import device_peak, store_frozen_towers, tokens_per_item_of
from benchmark.train.objectives.registry import Objective, get_objective
from benchmark.train.recommender import Recommender
from benchmark.train.sequence_models.registry import get_sequence_model
from benchmark.train.setup import TrainingSetup
from benchmark.train.trainer import Trainer
from benchmark.units import GIB


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
    setup_started = time.perf_counter()
    data = read_data(config, progress)
    strategy = data.method.distributed_strategy(config.train.distributed)
    if strategy != config.train.distributed and config.train.distributed != "none":
        record.warnings.append(
            f"train.distributed {config.train.distributed}: method '{config.method.name}' trains under {strategy} "
            "(its trainable part is small and its towers frozen: there is nothing to shard)"
        )
    world = start_world(config.train, data.device, strategy)
    nvml_device = _device_facts(config, data.device, record)
    split = _split(config, data.raw, record)
    plan = assemble(data, progress)
    checkpointing = checkpointing_mode(plan.method.options)
    model, features, tokens_per_item, off_device_params = _build_model(plan, split, record, built_caches)
    del plan  # a cached method's towers and the media they read are done: they never reach the training device
    trainable, total = count_parameters(model)
    total += off_device_params  # frozen towers count in the total even when only their cache is used
    record.add(
        ModelFacts(
            trainable, total, 100.0 * trainable / max(total, 1), time.perf_counter() - setup_started, checkpointing
        )
    )
    setup = TrainingSetup(model, split, features, config, data.device, progress, world)
    _train_and_evaluate(setup, nvml_device, record, tokens_per_item)


def _device_facts(config: CellConfig, device: torch.device, record: CellRecord) -> NvmlDevice | None:
    """The device's identity, memory in use before the cell, and peak; warnings for figures it cannot give."""
    warnings = record.warnings
    if device.type == "cpu" and config.train.precision == "fp16":
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
    record.add(device_peak(device, config.train.precision))
    return nvml_device


def _split(config: CellConfig, raw: RawDataset, record: CellRecord) -> SplitDataset:
    """The leave-one-out split; a batch larger than the training set measures nothing and is refused."""
    train_config = config.train
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
    return split


def _build_model(
    plan: CellPlan, split: SplitDataset, record: CellRecord, built_caches: set[str]
) -> tuple[Recommender, ItemFeatures, torch.Tensor | None, int]:
    """The recommender on the device (the method's item encoder over the plan's towers, the user encoder), the item
    features it trains on (the hidden-state caches for a cached method), the tokens of each item, and the
    parameters of the towers a cached method leaves off the device."""
    train_config, method, towers, features = plan.config.train, plan.method, plan.towers, plan.features
    tokens_per_item = tokens_per_item_of(features, list(towers))
    off_device_params = 0
    if method.uses_cache:
        # The launcher built the caches in their own process: this one's CUDA context never sees the towers.
        caches = find_caches(plan)
        features = ItemFeatures({states_key(modality): cache.open_states() for modality, cache in caches.items()})
        origins = {cache_origin(cache, built_caches, plan.device) for cache in caches.values()}
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
    item_encoder = method.build_item_encoder(dict(towers), train_config.embed_dim)
    log_probability = None
    if train_config.logq_correction:
        probability = (split.item_counts + 1) / (split.item_counts.sum() + len(split.item_counts))
        log_probability = torch.log(torch.as_tensor(probability, dtype=torch.float32))
    model = build_recommender(item_encoder, train_config, log_probability).to(plan.device)
    store_frozen_towers(model, train_config.precision, train_config.frozen_weights)
    return model, features, tokens_per_item, off_device_params


def build_recommender(item_encoder: nn.Module, train: TrainConfig, log_probability: torch.Tensor | None) -> Recommender:
    """The recommender over `item_encoder`: the cell's user encoder and objective (`mmbench estimate` builds the
    same on the meta device)."""
    return Recommender(
        item_encoder,
        train.embed_dim,
        train.max_seq_len,
        train.user_layers,
        train.user_heads,
        train.dropout,
        log_probability,
        train.user_encoder,
        sequence_model=sequence_model_of(train),
        objective=objective_of(train),
    )


def sequence_model_of(train: TrainConfig) -> nn.Module:
    """The cell's user encoder, built with its own options (`train.sequence_options`)."""
    model = get_sequence_model(train.sequence_model)
    return model.build(train, build(model.Options, train.sequence_options.get(train.sequence_model) or {}))


def objective_of(train: TrainConfig) -> Objective:
    """The cell's training objective, with its own options (`train.objective_options`)."""
    objective = get_objective(train.objective)
    return objective(build(objective.Options, train.objective_options.get(train.objective) or {}))


def _train_and_evaluate(
    setup: TrainingSetup, nvml_device: NvmlDevice | None, record: CellRecord, tokens_per_item: torch.Tensor | None
) -> None:
    """Train with every measurement running, then the final evaluation; each piece lands in `record` as it ends,
    also when training fails."""
    config = setup.config
    evaluator = Evaluator(setup) if config.eval.enabled else None
    trainer = Trainer(setup, nvml_device, evaluator, tokens_per_item)
    if trainer.loss.fallback:
        print(f"warning: {trainer.loss.fallback}", file=sys.stderr)
    try:
        trainer.run()
    finally:
        record.add(trainer.timing, trainer.static_memory, trainer.step_cost, trainer.step_ops)
        record.add(*(trainer.measurement or ()))
        record.add(trainer.compilation, trainer.learning_curve(), trainer.rank_figures)
        if trainer.loss.fallback:
            record.warnings.append(trainer.loss.fallback)
    evaluation_memory = trainer.trackers.evaluation_memory
    if evaluator is not None:
        with evaluation_memory.span():
            record.add(evaluator.final())
    record.add(evaluation_memory.measurement)
