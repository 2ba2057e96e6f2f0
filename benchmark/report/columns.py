"""What the leaderboard shows, formatted once for every human-readable format."""

from __future__ import annotations

import math
from typing import Any

from benchmark.results.leaderboard import Leaderboard

RAW_COLUMNS = [
    "method_label", "method", "towers", "dataset", "hardware", "precision", "batch_size", "seeds", "trainable_params",
    "trainable_pct", "peak_mem_gib", "peak_mem_source", "epoch_s", "epoch_kind", "step_ms_median", "step_ms_p10",
    "step_ms_p90", "samples_per_s", "energy_j_per_epoch", "tpme", "tpme_fft", "epoch_vs_fft", "mem_vs_fft", "group_size", "test_hr@10", "test_ndcg@10",
    "pop_test_hr@10", "pop_test_ndcg@10", "random_test_hr@10", "random_test_ndcg@10",
]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, pattern: str) -> str:
    return "–" if _missing(value) else format(value, pattern)


def _params(count: Any, percent: Any) -> str:
    if _missing(count):
        return "–"
    count = float(count)
    text = f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count / 1e3:.1f} k"
    return f"{text} ({percent:.2f}%)" if not _missing(percent) else text


def display_rows(board: Leaderboard) -> list[dict[str, str]]:
    rows = []
    for row in board.table.iter_rows(named=True):
        step = _number(row["step_ms_median"], ".1f")
        if not _missing(row["step_ms_p10"]):
            step += f" ({row['step_ms_p10']:.1f}–{row['step_ms_p90']:.1f})"
        epoch = _number(row["epoch_s"], ".2f")
        if row.get("epoch_kind") == "estimated":
            epoch += " est"
        memory = _number(row["peak_mem_gib"], ".3f")
        if not _missing(row["peak_mem_gib"]):
            memory += f" {row['peak_mem_source']}"
        rows.append({
            "group": " / ".join(str(row[c]) for c in board.group_by),
            "method": row["method_label"],
            "trainable params": _params(row["trainable_params"], row["trainable_pct"]),
            "peak mem GiB": memory,
            "epoch s": epoch,
            "step ms (p10–p90)": step,
            "time/FFT": _number(row["epoch_vs_fft"], ".2f"),
            "mem/FFT": _number(row["mem_vs_fft"], ".2f"),
            "samples/s": _number(row["samples_per_s"], ".1f"),
            "energy J/epoch": _number(row["energy_j_per_epoch"], ".0f"),
            "TPME": _number(row["tpme"], ".3f"),
            "TPME-FFT": _number(row["tpme_fft"], ".3f"),
            "HR@10": _number(row["test_hr@10"], ".4f"),
            "NDCG@10": _number(row["test_ndcg@10"], ".4f"),
            "seeds": str(row["seeds"]),
        })
    return rows


def weights_line(board: Leaderboard) -> str:
    a1, a2, a3 = board.weights
    return f"TPME weights: time {a1:g}, params {a2:g}, memory {a3:g} (lower is better; TPME-FFT uses ratios to FFT in the group)"
