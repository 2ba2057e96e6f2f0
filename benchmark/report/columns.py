"""What the leaderboard shows, formatted once for every human-readable format."""

from __future__ import annotations

import math
from typing import Any

from benchmark.results.leaderboard import MEMORY_BREAKDOWN_COLUMNS, Leaderboard, group_label
from benchmark.units import MIB

RAW_COLUMNS = [
    "method_label",
    "method",
    "variant",
    "config_id",
    "towers",
    "dataset",
    "hardware",
    "precision",
    "batch_size",
    "max_seq_len",
    "runs",
    "seeds",
    "repeats",
    "trainable_params",
    "trainable_pct",
    "peak_mem_gib",
    "peak_mem_gib_lo",
    "peak_mem_gib_hi",
    "peak_mem_source",
    "eval_peak_reserved_gib",
    *MEMORY_BREAKDOWN_COLUMNS,
    "torch_peak_alloc_gib",
    "epoch_s",
    "epoch_s_lo",
    "epoch_s_hi",
    "epoch_kind",
    "cache_build_s",
    "amortized_over_epochs",
    "epoch_amortized_s",
    "epoch_amortized_s_lo",
    "epoch_amortized_s_hi",
    "cache_origins",
    "step_ms_median",
    "step_ms_median_lo",
    "step_ms_median_hi",
    "step_ms_p10",
    "step_ms_p90",
    "step_cv",
    "data_share",
    "samples_per_s",
    "items_per_s",
    "tokens_per_s",
    "flops_per_step",
    "flops_tower",
    "flops_side",
    "flops_user",
    "flops_other",
    "step_kernels",
    "step_syncs",
    "tflops_per_s",
    "peak_tflops",
    "mfu",
    "compile_s",
    "tta_s",
    "tta_incl_cache_s",
    "energy_j_per_epoch",
    "tpme",
    "tpme_amortized",
    "tpme_fft",
    "fft_anchor",
    "epoch_vs_fft",
    "mem_vs_fft",
    "group_size",
    "caveats",
    "test_hr@10",
    "test_ndcg@10",
    "pop_test_hr@10",
    "pop_test_ndcg@10",
    "random_test_hr@10",
    "random_test_ndcg@10",
]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, pattern: str) -> str:
    return "–" if _missing(value) else format(value, pattern)


def _with_interval(row: dict[str, Any], column: str, pattern: str) -> str:
    text = _number(row[column], pattern)
    low, high = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if not _missing(low) and not _missing(high):
        text += f" [{low:{pattern}}–{high:{pattern}}]"
    return text


def _params(count: Any, percent: Any) -> str:
    if _missing(count):
        return "–"
    count = float(count)
    text = f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count / 1e3:.1f} k"
    return f"{text} ({percent:.2f}%)" if not _missing(percent) else text


def _versus_fft(row: dict[str, Any], column: str) -> str:
    if not _missing(row[column]):
        return format(row[column], ".2f" if column != "tpme_fft" else ".3f")
    caveats = row.get("caveats") or []
    return "FFT oom" if "fft-oom" in caveats else "no FFT" if "no-fft" in caveats else "–"


def display_rows(board: Leaderboard) -> list[dict[str, str]]:
    rows = []
    show_variant = not board.table.is_empty() and any(board.table["variant"].fill_null("").to_list())
    for row in board.table.iter_rows(named=True):
        step = _with_interval(row, "step_ms_median", ".1f")
        epoch = _with_interval(row, "epoch_s", ".2f") + (" est" if "estimated" in (row["epoch_kinds"] or []) else "")
        memory = _with_interval(row, "peak_mem_gib", ".3f")
        if not _missing(row["peak_mem_gib"]):
            memory += " " + "+".join(SHORT_SOURCES.get(source, source) for source in row["peak_mem_sources"] or [])
        entry = {"group": group_label(row, board.group_by), "method": row["method_label"]}
        if show_variant:
            entry["variant"] = row["variant"] or ""
        entry.update(
            {
                "runs": f"{row['runs']} ({row['seeds']}x{row['repeats']})",
                "trainable params": _params(row["trainable_params"], row["trainable_pct"]),
                "peak mem GiB [95%]": memory,
                "epoch s [95%]": epoch,
                "cache build s": _number(row["cache_build_s"], ".2f"),
                "amortised epoch s": _with_interval(row, "epoch_amortized_s", ".2f"),
                "step ms [95%]": step,
                "data %": _number(None if _missing(row["data_share"]) else 100 * row["data_share"], ".0f"),
                "time/FFT": _versus_fft(row, "epoch_vs_fft"),
                "mem/FFT": _versus_fft(row, "mem_vs_fft"),
                "energy J/epoch": _number(row["energy_j_per_epoch"], ".0f"),
                "TPME": _number(row["tpme"], ".3f"),
                "TPME amort.": _number(row["tpme_amortized"], ".3f"),
                "TPME-FFT": _versus_fft(row, "tpme_fft"),
                "HR@10": _number(row["test_hr@10"], ".4f"),
                "NDCG@10": _number(row["test_ndcg@10"], ".4f"),
                "caveats": ", ".join(row["caveats"] or []) or "–",
            }
        )
        rows.append(entry)
    return _without_empty_columns(rows, OPTIONAL_COLUMNS)


def _mib(value: Any) -> str:
    return "–" if _missing(value) else f"{value / MIB:.1f}"


def _flops(row: dict[str, Any]) -> str:
    total = row["flops_per_step"]
    if _missing(total):
        return "–"
    parts = [row[f"flops_{part}"] for part in ("tower", "side", "user", "other")]
    return f"{total / 1e9:.2f} [" + "/".join(_number(None if _missing(p) else p / 1e9, ".2f") for p in parts) + "]"


def _kernels(row: dict[str, Any]) -> str:
    """'310 (0)': kernel-launching operators of a step and host-device synchronisations among them."""
    if _missing(row["step_kernels"]):
        return "–"
    return f"{row['step_kernels']:.0f} ({_number(row['step_syncs'], '.0f')})"


def cost_rows(board: Leaderboard) -> list[dict[str, str]]:
    """Where each configuration's cost goes: memory by kind, work per step, how fast it ran, time to accuracy."""
    rows = []
    for row in board.table.iter_rows(named=True):
        mfu = row["mfu"]
        rows.append(
            {
                "group": group_label(row, board.group_by),
                "method": row["method_label"],
                "weights MiB trainable/frozen": f"{_mib(row['weights_trainable_bytes'])}/"
                f"{_mib(row['weights_frozen_bytes'])}",
                "grads MiB": _mib(row["gradient_bytes"]),
                "optimizer MiB": _mib(row["optimizer_state_bytes"]),
                "saved activations MiB": _mib(row["activation_saved_bytes"]),
                "activations at peak MiB": _mib(row["activation_peak_bytes"]),
                "allocator slack MiB": _mib(row["allocator_slack_bytes"]),
                "CUDA context MiB": _mib(row["cuda_context_bytes"]),
                "GFLOP/step [tower/side/user/other]": _flops(row),
                "kernels/step (syncs)": _kernels(row),
                "TFLOP/s": _number(row["tflops_per_s"], ".3f"),
                "MFU %": _number(None if _missing(mfu) else 100 * mfu, ".1f"),
                "samples/s": _number(row["samples_per_s"], ".1f"),
                "items/s": _number(row["items_per_s"], ".0f"),
                "tokens/s": _number(row["tokens_per_s"], ".0f"),
                "compile s": _number(row["compile_s"], ".1f"),
                "TTA s": _number(row["tta_s"], ".2f"),
                "TTA incl. cache s": _number(row["tta_incl_cache_s"], ".2f"),
            }
        )
    return _without_empty_columns(rows, COST_OPTIONAL_COLUMNS)


# Columns left out of a human-readable table when no row has a value (the CSV and JSON keep every column).
OPTIONAL_COLUMNS = ("cache build s", "data %", "energy J/epoch", "HR@10", "NDCG@10")
COST_OPTIONAL_COLUMNS = (
    "activations at peak MiB",
    "allocator slack MiB",
    "CUDA context MiB",
    "MFU %",
    "kernels/step (syncs)",
    "tokens/s",
    "compile s",
    "TTA s",
    "TTA incl. cache s",
)
SHORT_SOURCES = {"nvml_process": "nvml", "torch_reserved": "torch", "cpu_rss": "rss"}


def _without_empty_columns(rows: list[dict[str, str]], optional: tuple[str, ...]) -> list[dict[str, str]]:
    empty = [column for column in optional if rows and all(row[column] == "–" for row in rows)]
    return [{key: value for key, value in row.items() if key not in empty} for row in rows]


def weights_line(board: Leaderboard) -> str:
    a1, a2, a3 = board.weights
    return (
        f"TPME weights: time {a1:g}, params {a2:g}, memory {a3:g} (lower is better; TPME-FFT uses ratios to FFT in "
        "the group; "
        f"TPME amort. uses the amortised epoch; sorted by {board.sort})"
    )
