"""Leaderboard: one row per configuration (its seeds and repeats aggregated), TPME within groups of comparable work.

A row is a `config_id` on one piece of hardware: cells identical except for seed and repeat. Two
configurations are never merged; `group_by` only decides which rows are ranked together, and any
configuration key that still differs inside a group is shown in the row's `variant`. Every caveat
that changes what a comparison means travels with the row (`caveats`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from benchmark.analysis.intervals import INTERVAL_DESCRIPTION, MIN_INTERVAL_RUNS, bootstrap_median_interval
from benchmark.analysis.ranking import NOISY_STEP_CV, rank
from benchmark.analysis.tpme import MIN_GROUP_SIZE, PAPER_WEIGHTS
from benchmark.analysis.versions import with_stack
from benchmark.suite.matrix import config_id

# Rows are only compared within a group: same data, towers, precision, batch and hardware.
DEFAULT_GROUP_BY = ["dataset", "towers", "precision", "batch_size", "max_seq_len", "hardware"]
SORTS = ("tpme", "tpme_amortized")
# Where a configuration's memory goes, in bytes (static parts, then the dynamic ones).
MEMORY_BREAKDOWN_COLUMNS = [
    "weights_trainable_bytes",
    "weights_frozen_bytes",
    "gradient_bytes",
    "optimizer_state_bytes",
    "activation_saved_bytes",
    "activation_peak_bytes",
    "allocator_slack_bytes",
    "cuda_context_bytes",
]
# Counts (parameters, bytes, FLOPs): their median stays a whole number.
# One step's work: its FLOPs by who did them, its kernels and synchronisations.
STEP_WORK_COLUMNS = [
    "flops_per_step",
    "flops_tower",
    "flops_side",
    "flops_user",
    "flops_other",
    "step_kernels",
    "step_syncs",
]
COUNT_COLUMNS = ["trainable_params", "total_params", *MEMORY_BREAKDOWN_COLUMNS, *STEP_WORK_COLUMNS]
MEDIAN_COLUMNS = [
    *COUNT_COLUMNS,
    "trainable_pct",
    "peak_mem_gib",
    "epoch_s",
    "epoch_amortized_s",
    "device_epoch_s",
    "device_epoch_amortized_s",
    "step_ms_median",
    "step_ms_p10",
    "step_ms_p90",
    "samples_per_s",
    "items_per_s",
    "tokens_per_s",
    "tflops_per_s",
    "mfu",
    "peak_tflops",
    "compile_s",
    "tta_s",
    "tta_incl_cache_s",
    "energy_j_per_epoch",
    "torch_peak_alloc_gib",
    "torch_peak_reserved_gib",
    "nvml_peak_process_gib",
    "predicted_peak_process_gib",
    "predicted_peak_alloc_gib",
    "predicted_peak_reserved_gib",
    "predicted_step_ms",
    "cpu_peak_rss_gib",
    "eval_peak_reserved_gib",
    "cache_build_s",
    "amortized_over_epochs",
    "data_share",
    "step_cv",
    "valid_ndcg@10",
    "test_hr@10",
    "test_ndcg@10",
    "test_mrr",
    "final_loss",
    "pop_test_hr@10",
    "pop_test_ndcg@10",
    "random_test_hr@10",
    "random_test_ndcg@10",
]
# Figures shown with a 95% interval over the runs (seeds x repeats) of a configuration (at least MIN_INTERVAL_RUNS).
INTERVAL_COLUMNS = ("epoch_s", "epoch_amortized_s", "step_ms_median", "peak_mem_gib")
DESCRIPTIVE = [
    "config_id",
    "hardware",
    "dataset",
    "towers",
    "method",
    "method_label",
    "gradient_checkpointing",
    "base_precision",
    "precision",
    "batch_size",
    "max_seq_len",
    "world_size",
    "distributed",
]

CAVEATS = {
    "estimated": "epoch time estimated from the median step (max_steps cut the epoch)",
    "mixed-epoch": "the group mixes measured and estimated epoch times",
    "mixed-memory": "the group mixes memory sources (NVML, torch, RSS): TPME is not computed across them",
    "noisy": f"step-time coefficient of variation above {NOISY_STEP_CV:.0%}",
    "contended": "something else used the device or the CPU while this row was measured",
    "unlocked": "measured with --no-lock: another run may have shared the device",
    "no-fft": "no FFT row in the group: TPME-FFT and x/FFT have no anchor",
    "fft-oom": "FFT ran out of memory in this group: TPME-FFT and x/FFT have no anchor",
    "cache-foreign": "hidden-state cache built on other hardware: its build time is not amortised here",
    "ranks": "one cell on several ranks (GPUs): TPME and x/FFT weigh its time as device-seconds (epoch s x ranks) and "
    "its memory as the largest rank's peak, so it is never cheaper for using more devices",
    "warnings": "the cell recorded warnings (see the row's warnings)",
    "mixed-versions": "the group's rows ran on different torch/transformers/peft versions: their timings may differ "
    "for that reason alone, and random-weight towers differ across transformers versions, so accuracy is not "
    "comparable between them",
}


class GroupByError(ValueError):
    """A --group-by column that cannot define groups of comparable work."""


@dataclass
class Leaderboard:
    table: pl.DataFrame  # one row per configuration and hardware, successful cells only
    failures: pl.DataFrame  # cells that did not finish ok (latest run of each)
    group_by: list[str]
    weights: tuple[float, float, float]
    sort: str = "tpme"
    interval: str = INTERVAL_DESCRIPTION
    notes: list[str] = field(default_factory=list)


def with_hardware(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(
        pl.when(pl.col("gpu_name").is_not_null())
        .then(pl.col("gpu_name"))
        .otherwise(pl.concat_str([pl.lit("CPU "), pl.col("cpu").fill_null("?")]))
        .alias("hardware")
    )


def with_config_id(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows written before config_id existed get it from their stored config."""
    if "config_id" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("config_id"))
    missing = rows["config_id"].is_null() & rows["config_json"].is_not_null()
    if not missing.any():
        return rows
    filled = [
        config_id(json.loads(text)) if absent else known
        for known, text, absent in zip(rows["config_id"], rows["config_json"], missing)
    ]
    return rows.with_columns(pl.Series("config_id", filled, dtype=pl.String))


def latest_per_cell(rows: pl.DataFrame) -> pl.DataFrame:
    """A re-run cell (same config hash, same hardware) replaces the older row in the leaderboard; files are all kept."""
    return rows.sort("end_time", nulls_last=False).unique(
        subset=["config_hash", "hardware"], keep="last", maintain_order=True
    )


def _check_group_by(rows: pl.DataFrame, group_by: list[str]) -> None:
    unknown = [column for column in group_by if column not in rows.columns]
    if unknown:
        raise GroupByError(
            f"cannot group by unknown column(s) {', '.join(unknown)}; for example: "
            f"{', '.join(DEFAULT_GROUP_BY + ['method'])}"
        )
    nested = [column for column in group_by if isinstance(rows.schema[column], (pl.List, pl.Array, pl.Struct))]
    if nested:
        raise GroupByError(f"cannot group by {', '.join(nested)}: it holds a list of samples per row, not one value")
    if rows.is_empty():
        return
    checked = [c for c in group_by if c not in ("config_id", "hardware")]  # constant per row by construction
    if not checked:
        return
    varying = (
        rows.group_by(["config_id", "hardware"])
        .agg([pl.col(c).n_unique() for c in checked])
        .select([pl.col(c).max() for c in checked])
        .row(0, named=True)
    )
    inside = [column for column, count in varying.items() if count and count > 1]
    if inside:
        raise GroupByError(
            f"cannot group by {', '.join(inside)}: it varies between the runs of one configuration "
            f"(a leaderboard row aggregates seeds and repeats; use --all-runs with --format csv for single runs)"
        )


def build_leaderboard(
    rows: pl.DataFrame,
    group_by: list[str] | None = None,
    weights: tuple[float, float, float] = PAPER_WEIGHTS,
    all_runs: bool = False,
    sort: str = "tpme",
) -> Leaderboard:
    if sort not in SORTS:
        raise GroupByError(f"--sort must be one of {', '.join(SORTS)}, got '{sort}'")
    group_by = list(dict.fromkeys(group_by or DEFAULT_GROUP_BY))
    rows = with_config_id(with_hardware(rows))
    if not all_runs:
        rows = latest_per_cell(rows)
    ok = rows.filter(pl.col("status") == "ok")
    _check_group_by(ok, group_by)
    failure_columns = list(
        dict.fromkeys(["cell_id", "status", "error", "method", "method_label", "config_id"] + group_by)
    )
    failures = rows.filter(pl.col("status") != "ok").select([c for c in failure_columns if c in rows.columns])
    table = _aggregate(ok, group_by)
    table = rank(table, group_by, weights, failures)
    order = [*group_by, sort]
    return Leaderboard(table.sort(order, nulls_last=True), failures, group_by, weights, sort)


def with_device_seconds(rows: pl.DataFrame) -> pl.DataFrame:
    """Each row's ranks (1 for a row of one process, or one written before distributed cells existed) and its epoch
    in device-seconds: what TPME weighs, so that a cell on N devices pays for all N."""
    for column, dtype in (("world_size", pl.Int64), ("distributed", pl.String)):
        if column not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype).alias(column))
    ranks = pl.col("world_size").fill_null(1)
    return rows.with_columns(
        ranks.alias("world_size"),
        (pl.col("epoch_s") * ranks).alias("device_epoch_s"),
        (pl.col("epoch_amortized_s") * ranks).alias("device_epoch_amortized_s"),
    )


def _aggregate(ok: pl.DataFrame, group_by: list[str]) -> pl.DataFrame:
    ok = with_stack(with_device_seconds(ok)).with_columns(
        (pl.col("step_ms").list.std() / pl.col("step_ms").list.mean()).alias("step_cv"),
        pl.col("warnings").list.len().fill_null(0).alias("warning_count"),
    )
    keys = ["config_id", "hardware"]
    carried = [c for c in dict.fromkeys(DESCRIPTIVE + group_by + ["config_json"]) if c not in keys]
    table = ok.group_by(keys, maintain_order=True).agg(
        [pl.len().alias("runs"), pl.col("seed").n_unique().alias("seeds"), pl.col("repeat").n_unique().alias("repeats")]
        + [pl.first(c) for c in carried]
        + [
            pl.col("peak_mem_source").unique().sort().alias("peak_mem_sources"),
            pl.col("epoch_kind").drop_nulls().unique().sort().alias("epoch_kinds"),
            pl.col("cache_origin").drop_nulls().unique().sort().alias("cache_origins"),
            pl.col("contended").fill_null(False).any().alias("contended"),
            (pl.col("device_lock") == "disabled").fill_null(False).any().alias("unlocked"),
            pl.col("warning_count").sum().alias("warning_count"),
            pl.col("stack").drop_nulls().unique().sort().alias("stacks"),
        ]
        + [pl.col(c).median() for c in MEDIAN_COLUMNS]
        # every run's learning curve, for the time-to-accuracy plot
        + [pl.col(c).alias(f"{c}s") for c in ("valid_ndcg10_curve", "valid_train_s_curve")]
        + [pl.col(c).alias(f"{c}_runs") for c in INTERVAL_COLUMNS]
    )
    if table.is_empty():
        return table
    table = table.with_columns(
        pl.col(COUNT_COLUMNS).cast(pl.Float64).round().cast(pl.Int64),
        pl.col("peak_mem_sources").list.join("+").alias("peak_mem_source"),
        pl.col("epoch_kinds").list.join("+").alias("epoch_kind"),
    )
    bounds: dict[str, list[float | None]] = {}
    counts: dict[str, list[int]] = {}
    for column in INTERVAL_COLUMNS:
        samples = [[v for v in values or [] if v is not None] for values in table[f"{column}_runs"].to_list()]
        intervals = [
            bootstrap_median_interval(values) if len(values) >= MIN_INTERVAL_RUNS else (None, None)
            for values in samples
        ]
        bounds[f"{column}_lo"] = [low for low, _ in intervals]
        bounds[f"{column}_hi"] = [high for _, high in intervals]
        counts[f"{column}_n"] = [len(values) for values in samples]  # the runs the interval rests on
    return table.with_columns(
        [pl.Series(name, values, dtype=pl.Float64) for name, values in bounds.items()]
        + [pl.Series(name, values, dtype=pl.Int64) for name, values in counts.items()]
    ).drop([f"{c}_runs" for c in INTERVAL_COLUMNS])


def group_label(row: dict[str, Any], group_by: list[str]) -> str:
    return " / ".join(str(row[c]) for c in group_by)


def group_baselines(board: Leaderboard) -> dict[str, dict[str, float | None]]:
    """Popularity and random HR@10 / NDCG@10 per group (the same split for every method of a group)."""
    if board.table.is_empty() or "pop_test_hr@10" not in board.table.columns:
        return {}
    columns = ["pop_test_hr@10", "pop_test_ndcg@10", "random_test_hr@10", "random_test_ndcg@10"]
    found = board.table.group_by(board.group_by, maintain_order=True).agg(
        [pl.col(c).drop_nulls().first() for c in columns]
    )
    return {
        group_label(row, board.group_by): {c: row[c] for c in columns}
        for row in found.iter_rows(named=True)
        if row["pop_test_hr@10"] is not None
    }


def small_groups(board: Leaderboard) -> list[str]:
    """Groups where TPME compares fewer than three rows (min-max normalisation says little there)."""
    if board.table.is_empty():
        return []
    sizes = board.table.group_by(board.group_by, maintain_order=True).agg(pl.first("group_size"))
    return [
        group_label(row, board.group_by)
        for row in sizes.iter_rows(named=True)
        if row["group_size"] is not None and row["group_size"] < MIN_GROUP_SIZE
    ]


def caveats_present(board: Leaderboard) -> dict[str, str]:
    """The caveat codes that appear in the table, with what each means."""
    if board.table.is_empty():
        return {}
    present = set(board.table["caveats"].explode().drop_nulls().to_list())
    return {code: text for code, text in CAVEATS.items() if code in present}
