"""Leaderboard: latest row per cell, seeds aggregated (median), TPME within groups of comparable work."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from benchmark.results.tpme import MIN_GROUP_SIZE, PAPER_WEIGHTS, Costs, tpme, tpme_fft

# Rows are only compared within a group: same data, towers, precision, batch and hardware.
DEFAULT_GROUP_BY = ["dataset", "towers", "precision", "batch_size", "max_seq_len", "hardware"]
FFT_METHOD = "fft"
MEDIAN_COLUMNS = [
    "trainable_params", "total_params", "trainable_pct", "peak_mem_gib", "epoch_s", "epoch_amortized_s", "step_ms_median",
    "step_ms_p10", "step_ms_p90", "samples_per_s", "energy_j_per_epoch", "torch_peak_reserved_gib", "nvml_peak_process_gib",
    "cpu_peak_rss_gib", "cache_build_s", "valid_ndcg@10", "test_hr@10", "test_ndcg@10", "test_mrr", "final_loss",
    "pop_test_hr@10", "pop_test_ndcg@10", "random_test_hr@10", "random_test_ndcg@10",
]


@dataclass
class Leaderboard:
    table: pl.DataFrame  # one row per (group, method label) of successful cells
    failures: pl.DataFrame  # cells that did not finish ok
    group_by: list[str]
    weights: tuple[float, float, float]


def with_hardware(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(
        pl.when(pl.col("gpu_name").is_not_null()).then(pl.col("gpu_name"))
        .otherwise(pl.concat_str([pl.lit("CPU "), pl.col("cpu").fill_null("?")])).alias("hardware"))


def latest_per_cell(rows: pl.DataFrame) -> pl.DataFrame:
    """A re-run cell (same config hash) replaces the older row in the leaderboard; files are all kept."""
    return rows.sort("end_time", nulls_last=False).unique(subset=["config_hash"], keep="last", maintain_order=True)


def build_leaderboard(rows: pl.DataFrame, group_by: list[str] | None = None,
                      weights: tuple[float, float, float] = PAPER_WEIGHTS, all_runs: bool = False) -> Leaderboard:
    group_by = group_by or DEFAULT_GROUP_BY
    rows = with_hardware(rows)
    if not all_runs:
        rows = latest_per_cell(rows)
    unknown = [column for column in group_by if column not in rows.columns]
    if unknown:
        raise ValueError(f"cannot group by unknown column(s) {unknown}; columns include {', '.join(DEFAULT_GROUP_BY + ['method', 'seed'])}")
    ok = rows.filter(pl.col("status") == "ok")
    failures = rows.filter(pl.col("status") != "ok").select(["cell_id", "status", "error"])
    keys = group_by + ["method", "method_label"]
    table = (
        ok.group_by(keys, maintain_order=True)
        .agg([pl.len().alias("seeds"), pl.first("peak_mem_source"), pl.first("epoch_kind")]
             + [pl.col(column).median() for column in MEDIAN_COLUMNS])
    )
    table = table.with_columns(pl.col("trainable_params", "total_params").cast(pl.Float64).round().cast(pl.Int64))
    table = _add_tpme(table, group_by, weights)
    return Leaderboard(table.sort(group_by + ["tpme"], nulls_last=True), failures, group_by, weights)


def _add_tpme(table: pl.DataFrame, group_by: list[str], weights: tuple[float, float, float]) -> pl.DataFrame:
    if table.is_empty():
        return table.with_columns(*[pl.lit(None, pl.Float64).alias(c) for c in ("tpme", "tpme_fft", "epoch_vs_fft", "mem_vs_fft")],
                                  pl.lit(None, pl.Int64).alias("group_size"))
    parts = []
    for _, group in table.group_by(group_by, maintain_order=True):
        # A row missing any of the three costs cannot be scored; it stays in the table without TPME.
        costs = [Costs(*values) if None not in values else None
                 for values in group.select(["epoch_s", "trainable_params", "peak_mem_gib"]).rows()]
        scored = [c for c in costs if c is not None]
        scores = iter(tpme(scored, weights))
        fft_rows = [c for c, method in zip(costs, group["method"].to_list()) if method == FFT_METHOD and c is not None]
        fft = fft_rows[0] if fft_rows else None
        fft_scores = iter(tpme_fft(scored, fft, weights))
        tpme_values, fft_values = [], []
        for cost in costs:
            tpme_values.append(next(scores) if cost is not None else None)
            fft_values.append(next(fft_scores) if cost is not None else None)
        # Plain ratios to FFT in the group, the figures papers quote ("x% of FFT's memory").
        epoch_ratio = [c.epoch_s / fft.epoch_s if c is not None and fft and fft.epoch_s > 0 else None for c in costs]
        memory_ratio = [c.peak_mem_gib / fft.peak_mem_gib if c is not None and fft and fft.peak_mem_gib > 0 else None for c in costs]
        parts.append(group.with_columns(pl.Series("tpme", tpme_values, dtype=pl.Float64),
                                        pl.Series("tpme_fft", fft_values, dtype=pl.Float64),
                                        pl.Series("epoch_vs_fft", epoch_ratio, dtype=pl.Float64),
                                        pl.Series("mem_vs_fft", memory_ratio, dtype=pl.Float64),
                                        pl.lit(len(scored), pl.Int64).alias("group_size")))
    return pl.concat(parts)


def group_baselines(board: Leaderboard) -> dict[str, dict[str, float | None]]:
    """Popularity and random HR@10 / NDCG@10 per group (the same split for every method of a group)."""
    if board.table.is_empty() or "pop_test_hr@10" not in board.table.columns:
        return {}
    columns = ["pop_test_hr@10", "pop_test_ndcg@10", "random_test_hr@10", "random_test_ndcg@10"]
    found = board.table.group_by(board.group_by, maintain_order=True).agg([pl.col(c).drop_nulls().first() for c in columns])
    return {" / ".join(str(row[c]) for c in board.group_by): {c: row[c] for c in columns}
            for row in found.iter_rows(named=True) if row["pop_test_hr@10"] is not None}


def small_groups(board: Leaderboard) -> list[str]:
    """Groups where TPME compares fewer than three methods (min-max normalisation says little there)."""
    if board.table.is_empty():
        return []
    sizes = board.table.group_by(board.group_by, maintain_order=True).agg(pl.first("group_size"))
    return [" / ".join(str(row[c]) for c in board.group_by) for row in sizes.iter_rows(named=True)
            if row["group_size"] is not None and row["group_size"] < MIN_GROUP_SIZE]
