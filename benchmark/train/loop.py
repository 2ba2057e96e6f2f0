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
from benchmark.data.dataset import ItemFeatures, iterate_train_batches, load_raw_dataset, split_leave_one_out, steps_per_epoch
from benchmark.methods.registry import get_method_class
from benchmark.models.towers import count_parameters
from benchmark.profile.memory import GIB, RssSampler, choose_peak_memory, reset_torch_peaks, torch_peaks_gib
from benchmark.profile.nvml import NvmlSampler, device_used_bytes, energy_millijoules, nvml_handle_for_torch_device
from benchmark.profile.timers import StepClock, summarize_ms, synchronize
from benchmark.results.schema import EVAL_KS
from benchmark.train.cache_build import ensure_caches
from benchmark.train.evaluate import encode_all_items, metrics_from_ranks, rank_targets
from benchmark.train.features import build_towers_and_features
from benchmark.train.precision import autocast_factory, grad_scaler, resolve_device
from benchmark.train.recommender import Recommender

Progress = Callable[[dict[str, Any]], None]


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
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train_config["lr"],
                                  weight_decay=train_config["weight_decay"])
    autocast = autocast_factory(train_config["precision"], device)
    scaler = grad_scaler(train_config["precision"], device)
    row["setup_s"] = time.perf_counter() - setup_started

    per_epoch = steps_per_epoch(split, train_config["batch_size"])
    planned = per_epoch * train_config["epochs"]
    if train_config["max_steps"]:
        planned = min(planned, train_config["max_steps"])
    row["steps_per_epoch"] = per_epoch
    progress({"event": "phase", "phase": "train", "total_steps": planned})

    _train(model, optimizer, scaler, autocast, split, features, config, device, nvml, nvml_device, planned, row, progress)
    if row["epoch_s"] is not None:
        row["epoch_amortized_s"] = row["epoch_s"] + (row["cache_build_s"] or 0.0) / train_config["epochs"]

    if eval_config["enabled"]:
        progress({"event": "phase", "phase": "eval"})
        eval_started = time.perf_counter()
        model.eval()
        with torch.no_grad():
            item_table = encode_all_items(model.item_encoder, features, split.n_items, device, eval_config["item_batch_size"], autocast)
            for split_name, histories, targets in (("valid", split.valid_history, split.valid_target),
                                                   ("test", split.test_history, split.test_target)):
                ranks = rank_targets(model.user_states, item_table, histories, targets, split.max_seq_len, eval_config["batch_size"], autocast)
                for name, value in metrics_from_ranks(ranks, [k for k in eval_config["ks"] if k in EVAL_KS]).items():
                    row[f"{split_name}_{name}"] = value
        synchronize(device)
        row["eval_s"] = time.perf_counter() - eval_started


def _train(model, optimizer, scaler, autocast, split, features, config, device, nvml, nvml_device, planned, row, progress) -> None:
    train_config = config["train"]
    warmup = train_config["warmup_steps"]
    unique_items = train_config["unique_items"]
    generator = np.random.default_rng(config["seed"])
    step_ms: list[float] = []
    warmup_ms: list[float] = []
    epoch_samples: list[float] = []
    losses: list[float] = []
    measured_sequences = 0
    energy_start = energy_end = None
    rss = RssSampler()
    sampler = NvmlSampler(nvml, nvml_device, hz=train_config["nvml_hz"])
    reset_torch_peaks(device)
    rss.start()
    sampler.start()
    model.train()
    step = 0
    try:
        for _epoch in range(train_config["epochs"]):
            synchronize(device)
            epoch_started = time.perf_counter()
            cut = False
            for sequences in iterate_train_batches(split, train_config["batch_size"], generator):
                batch = collate_train_batch(sequences, features, unique_items)
                if step == warmup and nvml_device is not None:
                    synchronize(device)
                    energy_start = energy_millijoules(nvml, nvml_device)
                with StepClock(device) as clock:
                    batch = batch.to(device)
                    with autocast():
                        loss = model.training_loss(batch.sequences, batch.features, batch.encoded_ids, batch.position_index)
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                step += 1
                losses.append(float(loss.detach()))
                if step <= warmup:
                    warmup_ms.append(clock.elapsed_ms)
                else:
                    step_ms.append(clock.elapsed_ms)
                    measured_sequences += sequences.shape[0]
                progress({"event": "step", "step": step, "total_steps": planned, "loss": losses[-1]})
                if train_config["max_steps"] and step >= train_config["max_steps"]:
                    cut = True
                    break
            synchronize(device)
            if not cut:
                epoch_samples.append(time.perf_counter() - epoch_started)
            if cut:
                break
        if nvml_device is not None and energy_start is not None:
            energy_end = energy_millijoules(nvml, nvml_device)
    finally:
        peaks = sampler.stop()
        rss_peak = rss.stop()
        alloc, reserved = torch_peaks_gib(device)
        row.update(torch_peak_alloc_gib=alloc, torch_peak_reserved_gib=reserved, cpu_peak_rss_gib=rss_peak / GIB,
                   nvml_peak_process_gib=peaks.process_peak_bytes / GIB if peaks.process_peak_bytes is not None else None,
                   nvml_peak_device_gib=peaks.device_peak_bytes / GIB if peaks.device_peak_bytes is not None else None,
                   nvml_samples=peaks.samples if sampler.available else None, nvml_hz=peaks.achieved_hz)
        row["peak_mem_gib"], row["peak_mem_source"] = choose_peak_memory(
            row["nvml_peak_process_gib"], reserved, row["cpu_peak_rss_gib"] if device.type == "cpu" else None)
        _record_timing(row, step_ms, warmup_ms, epoch_samples, losses, measured_sequences, row["steps_per_epoch"])
    if energy_start is not None and energy_end is not None and step_ms:
        measured_j = (energy_end - energy_start) / 1000.0
        row["energy_j_measured"] = measured_j
        row["energy_j_per_epoch"] = measured_j / len(step_ms) * row["steps_per_epoch"]


def _record_timing(row, step_ms, warmup_ms, epoch_samples, losses, measured_sequences, per_epoch) -> None:
    summary = summarize_ms(step_ms)
    row.update(step_ms=step_ms, warmup_ms=warmup_ms, measured_steps=len(step_ms), step_ms_median=summary["median"],
               step_ms_p10=summary["p10"], step_ms_p90=summary["p90"], epoch_s_samples=epoch_samples,
               epochs_run=len(epoch_samples), train_loss=losses, final_loss=losses[-1] if losses else None)
    row["samples_per_s"] = measured_sequences / (sum(step_ms) / 1000.0) if step_ms else None
    if epoch_samples:
        # The first epoch carries the warm-up (allocator growth, kernel selection); later ones do not.
        steady = epoch_samples[1:] or epoch_samples
        row["epoch_s"], row["epoch_kind"] = float(np.median(steady)), "measured"
    elif summary["median"] is not None:
        row["epoch_s"], row["epoch_kind"] = summary["median"] * per_epoch / 1000.0, "estimated"

