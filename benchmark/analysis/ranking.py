"""Ranks a leaderboard's rows within each group: TPME, the nearest FFT anchor and the ratios to it, caveats."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from benchmark.analysis.tpme import Costs, tpme, tpme_fft
from benchmark.results.schema import OUT_OF_MEMORY
from benchmark.suite.matrix import RUN_KEYS

FFT_METHOD = "fft"
NOISY_STEP_CV = 0.05  # step-time coefficient of variation above which a row is flagged
SCORED_COLUMNS = ("tpme", "tpme_amortized", "tpme_fft", "epoch_vs_fft", "mem_vs_fft")
_OPTIONS_BY_NAME = ("train.sequence_options.", "train.objective_options.")
# Config keys never shown as a variant: they name the method (its own column) or the run.
_QUIET_KEYS = {
    "suite",
    "cell_id",
    "timeout_s",
    "method.name",
    "method.label",
    "method.towers",
    "eval.tta_fraction",
    *RUN_KEYS,
}


def rank(
    table: pl.DataFrame, group_by: list[str], weights: tuple[float, float, float], failures: pl.DataFrame
) -> pl.DataFrame:
    """The aggregated rows with their scores (TPME, amortised TPME, TPME-FFT, ratios to FFT), group size, variant, FFT
    anchor and caveats, each group scored on its own."""
    if table.is_empty():
        return table.with_columns(
            *[pl.lit(None, pl.Float64).alias(c) for c in SCORED_COLUMNS],
            pl.lit(None, pl.Int64).alias("group_size"),
            pl.lit(None, pl.String).alias("variant"),
            pl.lit(None, pl.String).alias("fft_anchor"),
            pl.lit(None, pl.List(pl.String)).alias("caveats"),
        )
    parts = [
        _rank_group(key, group, group_by, weights, failures)
        for key, group in table.group_by(group_by, maintain_order=True)
    ]
    return pl.concat(parts, how="vertical_relaxed")


def _rank_group(
    key: tuple[Any, ...],
    group: pl.DataFrame,
    group_by: list[str],
    weights: tuple[float, float, float],
    failures: pl.DataFrame,
) -> pl.DataFrame:
    """One group's rows scored against one another (`key`: the group's values of the `group_by` columns)."""
    members = group.to_dicts()
    flats = [_flatten(json.loads(m["config_json"])) for m in members]
    # Device-seconds (epoch x ranks): a cell on several GPUs is charged for every one of them.
    costs = [_costs(m, "device_epoch_s") for m in members]
    amortized = [_costs(m, "device_epoch_amortized_s") for m in members]
    mixed_memory, group_caveats = _group_caveats(members, costs)
    fft_indices = [i for i, m in enumerate(members) if m["method"] == FFT_METHOD and costs[i] is not None]
    missing_fft: list[str] = []
    if not fft_indices:
        missing_fft.append("fft-oom" if _missing_fft_state(failures, group_by, key) == "oom" else "no-fft")
    nearest = [
        _nearest_fft(index, members, flats, fft_indices) if fft_indices and not mixed_memory else None
        for index in range(len(members))
    ]
    against = [_against_fft(cost, costs[i] if i is not None else None, weights) for cost, i in zip(costs, nearest)]
    return group.with_columns(
        pl.Series("tpme", _scores(costs, weights, mixed_memory), dtype=pl.Float64),
        pl.Series("tpme_amortized", _scores(amortized, weights, mixed_memory), dtype=pl.Float64),
        pl.Series("tpme_fft", [fft for fft, _, _ in against], dtype=pl.Float64),
        pl.Series("epoch_vs_fft", [epoch for _, epoch, _ in against], dtype=pl.Float64),
        pl.Series("mem_vs_fft", [memory for _, _, memory in against], dtype=pl.Float64),
        pl.lit(sum(c is not None for c in costs), pl.Int64).alias("group_size"),
        pl.Series("variant", _variants(group), dtype=pl.String),
        pl.Series("fft_anchor", [members[i]["config_id"] if i is not None else None for i in nearest], dtype=pl.String),
        pl.Series(
            "caveats", [group_caveats + missing_fft + _row_caveats(m) for m in members], dtype=pl.List(pl.String)
        ),
    )


def _group_caveats(members: list[dict[str, Any]], costs: list[Costs | None]) -> tuple[bool, list[str]]:
    """Whether the group mixes memory sources (then TPME is not computed across them), and the caveats of the whole
    group: mixed memory sources, mixed measured and estimated epochs, mixed package versions."""
    sources = {m["peak_mem_source"] for m, c in zip(members, costs) if c is not None}
    mixed_memory = len(sources) > 1 or any("+" in (source or "") for source in sources)
    kinds = {kind for m in members for kind in (m["epoch_kinds"] or [])}
    caveats = (["mixed-memory"] if mixed_memory else []) + (["mixed-epoch"] if len(kinds) > 1 else [])
    if len({stack for m in members for stack in (m["stacks"] or [])}) > 1:
        caveats.append("mixed-versions")
    return mixed_memory, caveats


def _nearest_fft(index: int, members: list[dict[str, Any]], flats: list[dict[str, str]], fft_indices: list[int]) -> int:
    """Row `index`'s FFT anchor: with several FFT configurations (an lr sweep), the one whose settings are closest."""
    return min(fft_indices, key=lambda i: (_distance(flats[index], flats[i]), members[i]["config_id"]))


def _against_fft(
    cost: Costs | None, fft: Costs | None, weights: tuple[float, float, float]
) -> tuple[float | None, float | None, float | None]:
    """A row's TPME-FFT, epoch time / FFT's and peak memory / FFT's; None without both costs (or a zero FFT cost)."""
    if cost is None or fft is None:
        return None, None, None
    return (
        tpme_fft([cost], fft, weights)[0],
        cost.epoch_s / fft.epoch_s if fft.epoch_s > 0 else None,
        cost.peak_mem_gib / fft.peak_mem_gib if fft.peak_mem_gib > 0 else None,
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: json.dumps(value, sort_keys=True)}


def _variants(group: pl.DataFrame) -> list[str]:
    """Per row, the configuration keys that differ inside its group (the rows are distinct configurations)."""
    configs = []
    for text, hardware in zip(group["config_json"], group["hardware"]):
        flat = {key: value for key, value in _flatten(json.loads(text)).items() if key not in _QUIET_KEYS}
        flat["hardware"] = json.dumps(hardware)
        configs.append(flat)
    labels = group["method_label"].to_list()

    def differing(members: list[dict[str, str]], keep: Any) -> set[str]:
        keys = set().union(*members)
        return {key for key in keys if keep(key) and len({member.get(key) for member in members}) > 1}

    # Across methods, method options differ by nature; among configurations of one label they are a variant.
    shared = differing(configs, lambda key: not key.startswith("method."))
    variants = []
    for config, label in zip(configs, labels):
        same_label = [other for other, other_label in zip(configs, labels) if other_label == label]
        keys = shared | differing(same_label, lambda key: True)
        for named in ("dataset", "towers"):
            if f"{named}.name" in keys:  # a differing name stands for the rest of that entry
                keys = {key for key in keys if not key.startswith(f"{named}.") or key == f"{named}.name"}
        # Options kept by name for a chosen extension (train.sequence_options.<model>...): a row shows its own
        # choice's, never another choice's absence.
        keys = {key for key in keys if key in config or not key.startswith(_OPTIONS_BY_NAME)}
        shown = [f"{key}={_shown(config[key]) if key in config else '–'}" for key in sorted(keys)]
        variants.append(", ".join(shown))
    return variants


def _shown(text: str) -> str:
    """A flattened config value as the variant shows it: lists without spaces (the table breaks lines at ', ')."""
    value = json.loads(text)
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)


def _distance(a: dict[str, str], b: dict[str, str]) -> int:
    return sum(1 for key in set(a) | set(b) if not key.startswith("method.") and a.get(key) != b.get(key))


def _costs(row: dict[str, Any], epoch_column: str) -> Costs | None:
    values = (row[epoch_column], row["trainable_params"], row["peak_mem_gib"])
    return Costs(*values) if None not in values else None


def _scores(costs: list[Costs | None], weights: tuple[float, float, float], mixed_memory: bool) -> list[float | None]:
    """TPME over the rows that have all three costs; none at all where memory figures are not comparable."""
    present = [c for c in costs if c is not None]
    if mixed_memory or not present:
        return [None] * len(costs)
    values = iter(tpme(present, weights))
    return [next(values) if c is not None else None for c in costs]


def _row_caveats(member: dict[str, Any]) -> list[str]:
    caveats = []
    if "estimated" in (member["epoch_kinds"] or []):
        caveats.append("estimated")
    if member["step_cv"] is not None and member["step_cv"] > NOISY_STEP_CV:
        caveats.append("noisy")
    if member["contended"]:
        caveats.append("contended")
    if member["unlocked"]:
        caveats.append("unlocked")
    if "reused_other_hardware" in (member["cache_origins"] or []):
        caveats.append("cache-foreign")
    if member["warning_count"]:
        caveats.append("warnings")
    if (member.get("world_size") or 1) > 1:
        caveats.append("ranks")
    return caveats


def _missing_fft_state(failures: pl.DataFrame, group_by: list[str], key: tuple[Any, ...]) -> str:
    """'oom' when the group's FFT cell ran out of memory, else 'missing'."""
    if failures.is_empty() or any(column not in failures.columns for column in group_by):
        return "missing"
    matches = failures.filter(pl.col("method") == FFT_METHOD)
    for column, value in zip(group_by, key):
        matches = matches.filter(pl.col(column) == value)
    return "oom" if matches["status"].is_in(list(OUT_OF_MEMORY)).any() else "missing"
