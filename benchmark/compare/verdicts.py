"""Figure by figure: is the current side worse, better, the same, or can the samples not tell?

- status: a configuration that ran in the baseline and runs out of memory now regressed (an OOM is a
  measurement: it no longer fits); one that fails otherwise now (error, crash, timeout) is `failed`: nothing
  was measured, so nothing can be judged, and the exit code says so apart from a regression.
- trainable and total parameters: deterministic, so any change regresses (unless allowed).
- peak memory: deterministic on one GPU setup; a relative change of the median beyond the memory
  threshold counts, provided the runs do not overlap (every current run above every baseline run).
  A source that varies between runs of the same code (a CPU's RSS) overlaps, and a change inside
  that spread is inconclusive, not a regression.
- step time: noisy; a regression only when the median slows by more than the time threshold *and*
  the slowdown is significant (see statistics.py); beyond the threshold without significance, or
  with too few samples, it is inconclusive. Improvements mirror regressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import polars as pl

from benchmark.compare.statistics import RatioInterval, median_ratio_interval
from benchmark.results.schema import OUT_OF_MEMORY

Verdict = Literal["regression", "failed", "inconclusive", "improvement", "changed (allowed)", "unchanged"]
VERDICT_ORDER: tuple[Verdict, ...] = (
    "regression",
    "failed",
    "inconclusive",
    "improvement",
    "changed (allowed)",
    "unchanged",
)


@dataclass(frozen=True)
class Thresholds:
    time: float = 0.05  # relative slowdown of the median step time
    memory: float = 0.02  # relative growth of the peak memory
    alpha: float = 0.05  # significance level of the time test (one-sided)
    min_samples: int = 5  # step samples a side needs before the time test may decide
    allow_param_change: bool = False


@dataclass(frozen=True)
class FigureComparison:
    cell: str  # the configuration's label (cell id without seed and repeat)
    config_id: str
    figure: str
    baseline: Any
    current: Any
    change: float | None  # relative (current / baseline - 1), when the figure is a number
    verdict: Verdict
    detail: str = ""
    interval: tuple[float, float] | None = None  # bounds of the relative change (time)


def _ok(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.filter(pl.col("status") == "ok")


def _relative(baseline: float, current: float) -> float | None:
    return current / baseline - 1.0 if baseline else None


def _status(cell: str, config_id: str, baseline: pl.DataFrame, current: pl.DataFrame) -> FigureComparison | None:
    """A comparison of status when a side has no ok run; None when both ran."""
    base_ok, current_ok = not _ok(baseline).is_empty(), not _ok(current).is_empty()
    if base_ok and current_ok:
        return None
    before = "ok" if base_ok else "/".join(sorted(set(baseline["status"])))
    after = "ok" if current_ok else "/".join(sorted(set(current["status"])))
    errors = [e for e in current["error"].to_list() if e] if not current_ok else []
    verdict: Verdict
    if current_ok:  # and the baseline did not run
        verdict = "improvement"
    elif set(current["status"]) == {"skipped"}:
        # Not run on this machine by design: nothing to judge, and nothing lost if the baseline did not run either.
        verdict = "inconclusive" if base_ok else "unchanged"
    elif set(current["status"]) & set(OUT_OF_MEMORY):
        verdict = "regression" if base_ok else "unchanged"
    else:
        verdict = "failed"
    return FigureComparison(cell, config_id, "status", before, after, None, verdict, errors[0] if errors else "")


def _parameters(
    cell: str, config_id: str, column: str, baseline: pl.DataFrame, current: pl.DataFrame, thresholds: Thresholds
) -> FigureComparison | None:
    before, after = _ok(baseline)[column].drop_nulls(), _ok(current)[column].drop_nulls()
    if before.is_empty() or after.is_empty():
        return None
    # Non-empty integer counts: max() is a number, never None.
    base_value, current_value = int(cast(float, before.max())), int(cast(float, after.max()))
    if base_value == current_value:
        verdict: Verdict = "unchanged"
    else:
        verdict = "changed (allowed)" if thresholds.allow_param_change else "regression"
    return FigureComparison(
        cell, config_id, column, base_value, current_value, _relative(base_value, current_value), verdict
    )


def _memory(
    cell: str, config_id: str, baseline: pl.DataFrame, current: pl.DataFrame, thresholds: Thresholds
) -> FigureComparison | None:
    before, after = _ok(baseline), _ok(current)
    base_values, current_values = before["peak_mem_gib"].drop_nulls(), after["peak_mem_gib"].drop_nulls()
    if base_values.is_empty() or current_values.is_empty():
        return None
    # Non-empty float columns: median(), min() and max() are numbers, never None.
    base_value, current_value = float(cast(float, base_values.median())), float(cast(float, current_values.median()))
    change = _relative(base_value, current_value)
    sources = (set(before["peak_mem_source"].drop_nulls()), set(after["peak_mem_source"].drop_nulls()))
    if sources[0] != sources[1]:
        detail = f"measured differently: {'/'.join(sorted(sources[0]))} vs {'/'.join(sorted(sources[1]))}"
        return FigureComparison(
            cell, config_id, "peak_mem_gib", base_value, current_value, change, "inconclusive", detail
        )
    verdict: Verdict = "unchanged"
    detail = "/".join(sorted(sources[0]))
    base_low, base_high = cast(float, base_values.min()), cast(float, base_values.max())
    current_low, current_high = cast(float, current_values.min()), cast(float, current_values.max())
    spread = f"runs {base_low:.3f}-{base_high:.3f} vs {current_low:.3f}-{current_high:.3f}"
    if change is not None and abs(change) > thresholds.memory:
        grew = change > 0
        separated = current_low > base_high if grew else current_high < base_low
        if separated:
            verdict = "regression" if grew else "improvement"
        else:
            verdict, detail = "inconclusive", f"{detail}; the runs overlap ({spread})"
    return FigureComparison(cell, config_id, "peak_mem_gib", base_value, current_value, change, verdict, detail)


def _step_runs(rows: pl.DataFrame) -> list[list[float]]:
    return [list(samples) for samples in _ok(rows)["step_ms"].to_list() if samples]


def time_verdict(interval: RatioInterval, thresholds: Thresholds) -> tuple[Verdict, str]:
    change = interval.ratio - 1.0
    slower, faster = interval.low > 1.0, interval.high < 1.0
    if change > thresholds.time:
        return ("regression", "") if slower else ("inconclusive", "slower beyond the threshold, not significant")
    if change < -thresholds.time:
        return ("improvement", "") if faster else ("inconclusive", "faster beyond the threshold, not significant")
    return "unchanged", "within the threshold"


def _step_time(
    cell: str, config_id: str, baseline: pl.DataFrame, current: pl.DataFrame, thresholds: Thresholds
) -> FigureComparison | None:
    base_runs, current_runs = _step_runs(baseline), _step_runs(current)
    interval = median_ratio_interval(base_runs, current_runs, thresholds.alpha)
    if interval is None:
        return None
    # Steps of runs the interval accepted: non-empty floats, so the medians are numbers.
    base_median = float(cast(float, pl.Series([s for run in base_runs for s in run]).median()))
    current_median = float(cast(float, pl.Series([s for run in current_runs for s in run]).median()))
    counts = (
        f"{interval.baseline_samples} vs {interval.current_samples} steps, {len(base_runs)} vs {len(current_runs)} runs"
    )
    if min(interval.baseline_samples, interval.current_samples) < thresholds.min_samples:
        verdict: Verdict = "inconclusive"
        detail = f"too few samples to decide ({counts}; need {thresholds.min_samples})"
    else:
        verdict, why = time_verdict(interval, thresholds)
        detail = f"{why}; {counts}" if why else counts
    bounds = (interval.low - 1.0, interval.high - 1.0)
    change = interval.ratio - 1.0
    return FigureComparison(cell, config_id, "step_ms", base_median, current_median, change, verdict, detail, bounds)


def compare_configuration(
    cell: str, config_id: str, baseline: pl.DataFrame, current: pl.DataFrame, thresholds: Thresholds
) -> list[FigureComparison]:
    """Every figure of one configuration measured on both sides (rows: all runs of it, any status)."""
    status = _status(cell, config_id, baseline, current)
    if status is not None:
        return [status]
    found = [
        _parameters(cell, config_id, "trainable_params", baseline, current, thresholds),
        _parameters(cell, config_id, "total_params", baseline, current, thresholds),
        _memory(cell, config_id, baseline, current, thresholds),
        _step_time(cell, config_id, baseline, current, thresholds),
    ]
    return [comparison for comparison in found if comparison is not None]
