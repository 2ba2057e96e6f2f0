"""What the leaderboard shows, formatted once for every human-readable format."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmark.analysis.intervals import MIN_INTERVAL_RUNS
from benchmark.analysis.leaderboard import MEMORY_BREAKDOWN_COLUMNS, STEP_WORK_COLUMNS, Leaderboard, group_label
from benchmark.analysis.scaling import scaling_rows
from benchmark.units import MIB

RAW_COLUMNS = [
    "method_label",
    "method",
    "gradient_checkpointing",
    "base_precision",
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
    "world_size",
    "distributed",
    "device_epoch_s",
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
    *STEP_WORK_COLUMNS,
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

MISSING = "–"


@dataclass(frozen=True)
class Column:
    """One column of a human-readable table: `name` is what `--columns` takes, `header` what the table shows."""

    name: str
    header: str


# The leaderboard's columns in the order every format shows them: who, then how good (scores, accuracy, caveats),
# then what it cost, each figure followed by its interval, then the rest.
BOARD_COLUMNS = (
    Column("method", "method"),
    Column("variant", "variant"),
    Column("tpme", "TPME"),
    Column("tpme-fft", "TPME-FFT"),
    Column("hr@10", "HR@10"),
    Column("ndcg@10", "NDCG@10"),
    Column("caveats", "caveats"),
    Column("runs", "runs"),
    Column("step", "step ms"),
    Column("step-ci", "step ms 95% CI"),
    Column("memory", "peak mem GiB"),
    Column("memory-ci", "peak mem 95% CI"),
    Column("params", "trainable params"),
    Column("epoch", "epoch s"),
    Column("epoch-ci", "epoch s 95% CI"),
    Column("ranks", "ranks (device-s/epoch)"),
    Column("time/fft", "time/FFT"),
    Column("mem/fft", "mem/FFT"),
    Column("tpme-amort", "TPME amort."),
    Column("amortised", "amortised epoch s"),
    Column("amortised-ci", "amortised epoch s 95% CI"),
    Column("cache", "cache build s"),
    Column("data", "data %"),
    Column("energy", "energy J/epoch"),
)
COST_COLUMNS = (
    Column("method", "method"),
    Column("weights", "weights MiB trainable/frozen"),
    Column("grads", "grads MiB"),
    Column("optimizer", "optimizer MiB"),
    Column("saved-activations", "saved activations MiB"),
    Column("peak-activations", "activations at peak MiB"),
    Column("slack", "allocator slack MiB"),
    Column("cuda-context", "CUDA context MiB"),
    Column("predicted-peak", "predicted/measured peak GiB"),
    Column("predicted-step", "predicted/measured step ms"),
    Column("gflop", "GFLOP/step [tower/side/user/other]"),
    Column("kernels", "kernels/step (syncs)"),
    Column("tflops", "TFLOP/s"),
    Column("mfu", "MFU %"),
    Column("samples/s", "samples/s"),
    Column("items/s", "items/s"),
    Column("tokens/s", "tokens/s"),
    Column("compile", "compile s"),
    Column("tta", "TTA s"),
    Column("tta-cache", "TTA incl. cache s"),
)
# What names a row: always shown, whatever the width or --columns say.
IDENTITY = ("method", "variant")
# The order in which a terminal table that cannot show everything keeps columns (names; the rest follow in table
# order): the score and the accuracy, then the costs TPME weighs, then the caveats that change their meaning.
BOARD_PRIORITY = ("tpme", "ndcg@10", "step", "memory", "params", "hr@10", "tpme-fft", "caveats", "epoch", "runs")
COST_PRIORITY = (
    "gflop", "tflops", "samples/s", "saved-activations", "grads", "optimizer", "weights", "predicted-peak",
    "predicted-step", "tta",
)  # fmt: skip


def column_names() -> list[str]:
    return list(dict.fromkeys(c.name for c in (*BOARD_COLUMNS, *COST_COLUMNS)))


def resolve_columns(text: str) -> list[str]:
    """`--columns a,b,c`: the names (or headers, any case) given, as column names in the order given."""
    known = {c.name: c.name for c in (*BOARD_COLUMNS, *COST_COLUMNS)}
    known.update({c.header.lower(): c.name for c in (*BOARD_COLUMNS, *COST_COLUMNS)})
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name.lower() not in known]
    if unknown or not wanted:
        raise ValueError(
            f"--columns: unknown column(s) {', '.join(unknown) or '(none given)'}; one of: {', '.join(column_names())}"
        )
    return list(dict.fromkeys(known[name.lower()] for name in wanted))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits: fixed decimals print a small figure as zero (0.000412 TFLOP/s read
    0.000); whole numbers longer than that keep every digit (12345 items/s, not 1.23e+04)."""
    if value == 0 or not math.isfinite(value):
        return format(value, "g")
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -6:  # a positional 0.0000000412 is no easier to read
        return f"{value:.{digits - 1}e}"
    return f"{value:.{max(0, digits - 1 - magnitude)}f}"


def _figure(value: Any, digits: int = 3) -> str:
    return MISSING if _missing(value) else significant(float(value), digits)


def _number(value: Any, pattern: str) -> str:
    """Fixed decimals, for figures on a fixed scale (TPME in [0, 1], HR and NDCG)."""
    return MISSING if _missing(value) else format(value, pattern)


def _interval(row: dict[str, Any], column: str) -> str:
    """'40.0–44.0 (n=3)': the 95% interval and the runs it rests on; none below MIN_INTERVAL_RUNS runs (with two,
    a bootstrap interval of the median is just the two values)."""
    runs = int(row.get(f"{column}_n") or row["runs"])
    low, high = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if low is None or high is None or _missing(low) or _missing(high) or runs < MIN_INTERVAL_RUNS:
        return f"{MISSING} (n={runs})"
    return f"{significant(low)}–{significant(high)} (n={runs})"


def _count(count: float) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{significant(count / scale)} {unit}"
    return f"{count:.0f}"


def _params(count: Any, percent: Any) -> str:
    if _missing(count):
        return MISSING
    text = _count(float(count))
    return f"{text} ({significant(percent)}%)" if not _missing(percent) else text


def _versus_fft(row: dict[str, Any], column: str) -> str:
    if not _missing(row[column]):
        return format(row[column], ".3f") if column == "tpme_fft" else significant(row[column])
    caveats = row.get("caveats") or []
    return "FFT oom" if "fft-oom" in caveats else "no FFT" if "no-fft" in caveats else MISSING


def method_cell(row: dict[str, Any]) -> str:
    """The method's label, what its towers' linear layers are stored in when quantized, and how its towers keep
    activations when they recompute them in backward."""
    notes = [f"{row['base_precision']} base"] if row.get("base_precision") else []
    mode = row.get("gradient_checkpointing")
    if mode:
        notes.append(f"checkpointed{', reentrant' if mode == 'reentrant' else ''}")
    return str(row["method_label"]) + (f" ({', '.join(notes)})" if notes else "")


def display_rows(board: Leaderboard) -> list[dict[str, str]]:
    """One dict per leaderboard row, keyed by header in BOARD_COLUMNS order (and 'group')."""
    rows = []
    show_variant = not board.table.is_empty() and any(board.table["variant"].fill_null("").to_list())
    for row in board.table.iter_rows(named=True):
        memory = _figure(row["peak_mem_gib"])
        if not _missing(row["peak_mem_gib"]):
            memory += " " + "+".join(SHORT_SOURCES.get(source, source) for source in row["peak_mem_sources"] or [])
        values = {
            "method": method_cell(row),
            "variant": row["variant"] or "",
            "TPME": _number(row["tpme"], ".3f"),
            "TPME-FFT": _versus_fft(row, "tpme_fft"),
            "HR@10": _number(row["test_hr@10"], ".4f"),
            "NDCG@10": _number(row["test_ndcg@10"], ".4f"),
            "caveats": ", ".join(row["caveats"] or []) or MISSING,
            "runs": f"{row['runs']} ({row['seeds']}x{row['repeats']})",
            "step ms": _figure(row["step_ms_median"]),
            "step ms 95% CI": _interval(row, "step_ms_median"),
            "peak mem GiB": memory,
            "peak mem 95% CI": _interval(row, "peak_mem_gib"),
            "trainable params": _params(row["trainable_params"], row["trainable_pct"]),
            "epoch s": _figure(row["epoch_s"]) + (" est" if "estimated" in (row["epoch_kinds"] or []) else ""),
            "epoch s 95% CI": _interval(row, "epoch_s"),
            "ranks (device-s/epoch)": _ranks(row),
            "time/FFT": _versus_fft(row, "epoch_vs_fft"),
            "mem/FFT": _versus_fft(row, "mem_vs_fft"),
            "TPME amort.": _number(row["tpme_amortized"], ".3f"),
            "amortised epoch s": _figure(row["epoch_amortized_s"]),
            "amortised epoch s 95% CI": _interval(row, "epoch_amortized_s"),
            "cache build s": _figure(row["cache_build_s"]),
            "data %": _figure(None if _missing(row["data_share"]) else 100 * row["data_share"], 2),
            "energy J/epoch": _figure(row["energy_j_per_epoch"]),
        }
        entry = {"group": group_label(row, board.group_by)}
        entry.update({c.header: values[c.header] for c in BOARD_COLUMNS if c.name != "variant" or show_variant})
        rows.append(entry)
    return _without_empty_columns(rows, OPTIONAL_COLUMNS)


SCALING_TITLE = "scaling: the same configuration on more ranks"
SCALING_HEADERS = (
    "method", "ranks", "strategy", "epoch s", "samples/s", "speed-up", "efficiency", "peak mem GiB/rank",
    "device-s/epoch",
)  # fmt: skip
SCALING_NOTE = (
    "scaling: speed-up = global samples/s against the family's fewest ranks; efficiency = speed-up / (ranks / "
    "fewest ranks), 1.0 is linear; the global batch, learning rate and data order are the same at every size"
)


def scaling_display(board: Leaderboard) -> dict[str, list[dict[str, str]]]:
    """The scaling families of the leaderboard, each a list of rows keyed by SCALING_HEADERS."""
    families: dict[str, list[dict[str, str]]] = {}
    for row in scaling_rows(board.table):
        families.setdefault(row.family, []).append(
            {
                "method": row.method,
                "ranks": str(row.ranks),
                "strategy": row.strategy,
                "epoch s": _figure(row.epoch_s),
                "samples/s": _figure(row.samples_per_s),
                "speed-up": _number(row.speedup, ".2f"),
                "efficiency": _number(row.efficiency, ".2f"),
                "peak mem GiB/rank": _figure(row.peak_mem_gib),
                "device-s/epoch": _figure(row.device_epoch_s),
            }
        )
    return families


def _ranks(row: dict[str, Any]) -> str:
    """'4 ddp (310)': a cell on several ranks, its strategy and its epoch in device-seconds (what TPME weighs)."""
    ranks = row.get("world_size") or 1
    if ranks == 1 and not row.get("distributed"):
        return MISSING
    return f"{ranks} {row.get('distributed') or ''} ({_figure(row.get('device_epoch_s'))})".replace("  ", " ")


def _mib(value: Any) -> str:
    return MISSING if _missing(value) else significant(value / MIB)


def _flops(row: dict[str, Any]) -> str:
    total = row["flops_per_step"]
    if _missing(total):
        return MISSING
    parts = [row[f"flops_{part}"] for part in ("tower", "side", "user", "other")]
    return f"{significant(total / 1e9)} [" + "/".join(_figure(None if _missing(p) else p / 1e9, 2) for p in parts) + "]"


def _kernels(row: dict[str, Any]) -> str:
    """'310 (0)': kernel-launching operators of a step and host-device synchronisations among them."""
    if _missing(row["step_kernels"]):
        return MISSING
    return f"{row['step_kernels']:.0f} ({_number(row['step_syncs'], '.0f')})"


def _measured_peak(row: dict[str, Any]) -> Any:
    """The measured figure a predicted peak is set against: for a GPU prediction NVML's process peak (none where
    NVML could not tell it), for a CPU one the resident set."""
    on_gpu = not _missing(row["predicted_peak_reserved_gib"])
    return row["nvml_peak_process_gib"] if on_gpu else row["cpu_peak_rss_gib"]


def _predicted(row: dict[str, Any], column: str, measured: Any) -> str:
    """'0.53/0.71 (-25%)': what `mmbench estimate` predicted before the run, what was measured, the error."""
    predicted = row[column]
    if _missing(predicted):
        return MISSING
    if _missing(measured) or not measured:
        return f"{significant(predicted)}/{MISSING}"
    return f"{significant(predicted)}/{significant(measured)} ({(predicted / measured - 1) * 100:+.0f}%)"


def cost_rows(board: Leaderboard) -> list[dict[str, str]]:
    """Where each configuration's cost goes: memory by kind, work per step, how fast it ran, time to accuracy."""
    rows = []
    for row in board.table.iter_rows(named=True):
        mfu = row["mfu"]
        rows.append(
            {
                "group": group_label(row, board.group_by),
                "method": method_cell(row),
                "weights MiB trainable/frozen": f"{_mib(row['weights_trainable_bytes'])}/"
                f"{_mib(row['weights_frozen_bytes'])}",
                "grads MiB": _mib(row["gradient_bytes"]),
                "optimizer MiB": _mib(row["optimizer_state_bytes"]),
                "saved activations MiB": _mib(row["activation_saved_bytes"]),
                "activations at peak MiB": _mib(row["activation_peak_bytes"]),
                "allocator slack MiB": _mib(row["allocator_slack_bytes"]),
                "CUDA context MiB": _mib(row["cuda_context_bytes"]),
                "predicted/measured peak GiB": _predicted(row, "predicted_peak_process_gib", _measured_peak(row)),
                "predicted/measured step ms": _predicted(row, "predicted_step_ms", row["step_ms_median"]),
                "GFLOP/step [tower/side/user/other]": _flops(row),
                "kernels/step (syncs)": _kernels(row),
                "TFLOP/s": _figure(row["tflops_per_s"]),
                "MFU %": _figure(None if _missing(mfu) else 100 * mfu),
                "samples/s": _figure(row["samples_per_s"]),
                "items/s": _figure(row["items_per_s"]),
                "tokens/s": _figure(row["tokens_per_s"]),
                "compile s": _figure(row["compile_s"]),
                "TTA s": _figure(row["tta_s"]),
                "TTA incl. cache s": _figure(row["tta_incl_cache_s"]),
            }
        )
    return _without_empty_columns(rows, COST_OPTIONAL_COLUMNS)


# Columns left out of a human-readable table when no row has a value (the CSV and JSON keep every column).
OPTIONAL_COLUMNS = (
    "cache build s",
    "data %",
    "energy J/epoch",
    "ranks (device-s/epoch)",
    "HR@10",
    "NDCG@10",
    *(f"{header} 95% CI" for header in ("step ms", "peak mem", "epoch s", "amortised epoch s")),
)
COST_OPTIONAL_COLUMNS = (
    "predicted/measured peak GiB",
    "predicted/measured step ms",
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


def _empty(value: str) -> bool:
    """No value: a dash, or the interval of a single run (with two, '– (n=2)' says why there is none)."""
    return value in (MISSING, f"{MISSING} (n=1)")


def _without_empty_columns(rows: list[dict[str, str]], optional: tuple[str, ...]) -> list[dict[str, str]]:
    empty = [column for column in optional if rows and all(_empty(row[column]) for row in rows)]
    return [{key: value for key, value in row.items() if key not in empty} for row in rows]


def interval_note(board: Leaderboard) -> str:
    return (
        f"CI: {board.interval}; n = the runs it rests on; none (–) below {MIN_INTERVAL_RUNS} runs, where a "
        "bootstrap interval of the median is just the values themselves"
    )


def weights_line(board: Leaderboard) -> str:
    a1, a2, a3 = board.weights
    return (
        f"TPME weights: time {a1:g}, params {a2:g}, memory {a3:g} (lower is better; TPME-FFT uses ratios to FFT in "
        "the group; "
        f"TPME amort. uses the amortised epoch; sorted by {board.sort})"
    )
