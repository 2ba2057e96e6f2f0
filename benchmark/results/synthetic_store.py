"""Synthetic results stores for `make bench-report`: many rows in the layout `mmbench run` writes (one
directory per run, one Parquet file per cell), varied over methods, tower sets, batch sizes, hardware, seeds,
repeats and statuses, with a few corrupt files. Never used for a figure anyone reads as a measurement."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark import SCHEMA_VERSION
from benchmark.results.schema import RESULT_SCHEMA, empty_row
from benchmark.results.store import cell_file_name
from benchmark.suite.matrix import config_hash, config_id

METHODS = ("fft", "lora", "adapter", "bitfit", "iisan", "iisan_cached", "iisan_versa", "crossan")
TOWERS = ("bert-tiny+vit-micro", "bert-base+vit-base", "bert-large+vit-large", "qwen2-0.5b+vit-base")
BATCHES = (16, 32, 64)
HARDWARE = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB")
CELLS_PER_RUN = 500
# One row in a thousand ends in a failure status (oom, error, crashed, timeout), as real sweeps do.
FAILURES = ("oom", "error", "crashed", "timeout")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)  # the first row's start time


def _config(method: str, towers: str, batch: int, seed: int, repeat: int) -> dict[str, Any]:
    return {
        "suite": "bench",
        "dataset": {"name": "synthetic", "format": "synthetic", "path": None, "options": {}},
        "towers": {"name": towers},
        "method": {"name": method, "label": method, "options": {}},
        "train": {"batch_size": batch, "max_seq_len": 10, "precision": "bf16", "epochs": 1},
        "eval": {"enabled": True},
        "seed": seed,
        "repeat": repeat,
        "timeout_s": 1800,
    }


def synthetic_rows(count: int, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """`count` result rows: configurations (method x towers x batch) in turn, each over seeds and
    repeats, so every configuration has many runs once count passes a few hundred. `start`: the index of the first
    row (stores written in parts continue each other's runs)."""
    rng = np.random.default_rng(seed)
    configurations = [(m, t, b) for m in METHODS for t in TOWERS for b in BATCHES]
    return [_synthetic_row(index, configurations, rng) for index in range(start, start + count)]


def _synthetic_row(index: int, configurations: list[tuple[str, str, int]], rng: np.random.Generator) -> dict[str, Any]:
    """Row `index`: its configuration, run, seed and repeat follow from the index; its figures are drawn from `rng`
    (in a fixed order, so that a seed gives the same rows)."""
    method, towers, batch = configurations[index % len(configurations)]
    run = index // len(configurations)
    run_seed, repeat = run % 5, run // 5
    config = _config(method, towers, batch, run_seed, repeat)
    scale = (1 + METHODS.index(method)) * (1 + TOWERS.index(towers)) * batch / 16
    failed = rng.random() < 0.001
    steps = (scale * (1 + 0.03 * rng.standard_normal(20))).round(3).tolist()
    row = empty_row()
    row.update(
        {
            "schema_version": SCHEMA_VERSION,
            "suite": "bench",
            "run_id": f"bench-{index // CELLS_PER_RUN:05d}",
            "cell_id": f"synthetic/{towers}/{method}/batch={batch}/seed={run_seed}/repeat={repeat}",
            "config_hash": config_hash(config),
            "config_id": config_id(config),
            "config_json": json.dumps(config, sort_keys=True),
            "status": str(rng.choice(FAILURES)) if failed else "ok",
            "error": "synthetic failure" if failed else None,
            "warnings": [],
            "dataset": "synthetic",
            "towers": towers,
            "method": method,
            "method_label": method,
            "precision": "bf16",
            "batch_size": batch,
            "max_seq_len": 10,
            "seed": run_seed,
            "repeat": repeat,
        }
    )
    row.update(_measurements(index, method, towers, scale, steps, rng))
    if failed:
        for column in ("step_ms", "step_ms_median", "epoch_s", "peak_mem_gib", "test_ndcg@10", "test_hr@10"):
            row[column] = [] if column == "step_ms" else None
    return row


def _measurements(
    index: int, method: str, towers: str, scale: float, steps: list[float], rng: np.random.Generator
) -> dict[str, Any]:
    """Row `index`'s sizes, step times, memory, accuracy and the machine it ran on (one per run directory)."""
    return {
        "trainable_params": int(1e6 * (1 + METHODS.index(method))),
        "total_params": int(2e8 * (1 + TOWERS.index(towers))),
        "step_ms": steps,
        "step_ms_median": float(np.median(steps)),
        "measured_steps": len(steps),
        "epoch_s": float(np.median(steps)) * 0.5,
        "epoch_kind": "measured",
        "peak_mem_gib": round(scale * (1 + 0.001 * rng.standard_normal()), 4),
        "peak_mem_source": "nvml_process",
        "nvml_peak_process_gib": round(scale, 4),
        "test_ndcg@10": float(0.05 + 0.01 * rng.random()),
        "test_hr@10": float(0.1 + 0.02 * rng.random()),
        "gpu_name": HARDWARE[(index // CELLS_PER_RUN) % len(HARDWARE)],
        "device": "cuda",
        "driver_version": "580.65.06",
        "cuda_version": "13.0",
        "torch_version": "2.11.0",
        "start_time": EPOCH + timedelta(seconds=index),
        "end_time": EPOCH + timedelta(seconds=index + 30),
    }


def write_store(root: Path, count: int, corrupt: int = 3, seed: int = 0, start: int = 0) -> list[Path]:
    """Write `count` rows as per-cell files in run directories under `root`, plus `corrupt` files that are not
    Parquet; returns the corrupt files' paths."""
    rows = synthetic_rows(count, seed, start)
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    for index, row in enumerate(rows):
        run_dir = root / row["run_id"]
        run_dir.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(index, 1), run_dir / cell_file_name(row["cell_id"]))
    broken = []
    for index in range(corrupt):
        path = root / f"bench-{index:05d}" / f"broken-{index}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 this is not a parquet file" if index % 2 else b"garbage")
        broken.append(path)
    return broken
