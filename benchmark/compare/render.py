"""`mmbench compare` output: a Markdown table for a pull-request comment or a job summary, or JSON."""

from __future__ import annotations

import json
from typing import Any

from benchmark.compare.run import EXIT_CODES, Comparison
from benchmark.compare.sides import hardware_text
from benchmark.compare.statistics import DESCRIPTION
from benchmark.compare.verdicts import VERDICT_ORDER, FigureComparison

FIGURE_NAMES = {
    "status": "status",
    "trainable_params": "trainable parameters",
    "total_params": "total parameters",
    "peak_mem_gib": "peak memory (GiB)",
    "step_ms": "step time (ms, median)",
}
VERDICT_MARKS = {
    "regression": "❌ **regression**",
    "failed": "💥 **failed** (not measured)",
    "inconclusive": "⚠️ inconclusive",
    "improvement": "✅ improvement",
    "changed (allowed)": "ℹ️ changed (allowed)",
    "unchanged": "unchanged",
}


def _value(figure: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if figure.endswith("_params"):
        return f"{value:,}"
    if figure == "peak_mem_gib":
        return f"{value:.3f}"
    return f"{value:.3g}" if value < 100 else f"{value:.1f}"


def _change(comparison: FigureComparison) -> str:
    if comparison.change is None:
        return "—"
    text = f"{comparison.change:+.1%}"
    if comparison.interval is not None:
        text += f" [{comparison.interval[0]:+.1%}, {comparison.interval[1]:+.1%}]"
    return text


def _ordered(comparison: Comparison) -> list[FigureComparison]:
    rank = {verdict: index for index, verdict in enumerate(VERDICT_ORDER)}
    return sorted(comparison.figures, key=lambda f: (rank[f.verdict], f.cell, list(FIGURE_NAMES).index(f.figure)))


def summary_line(comparison: Comparison) -> str:
    counts = comparison.counts()
    parts = [f"{counts[verdict]} {verdict}" for verdict in VERDICT_ORDER if counts[verdict]]
    code = comparison.exit_code
    verdict = f"FAIL (exit {code}: {EXIT_CODES[code]})" if code else "PASS"
    failed = len(comparison.failed_in_current)
    skipped = len(comparison.skipped_in_current)
    failed_text = (f"; {failed} failed cell(s) in current" if failed else "") + (
        f"; {skipped} skipped cell(s) in current" if skipped else ""
    )
    counted = ", ".join(parts) or "nothing compared"
    return f"{verdict}: {counted} ({len(comparison.figures)} figures{failed_text})"


def render_markdown(comparison: Comparison) -> str:
    thresholds = comparison.thresholds
    lines = [
        "## mmbench compare",
        "",
        f"**{summary_line(comparison)}**",
        "",
        f"- baseline: `{comparison.baseline.path}` ({comparison.baseline.rows.height} rows); "
        f"current: `{comparison.current.path}` ({comparison.current.rows.height} rows)",
        f"- hardware: {'; '.join(map(hardware_text, comparison.current.hardware()))}",
    ]
    if comparison.hardware_mismatch:
        lines.append(f"- ⚠️ **hardware mismatch allowed** (`--allow-hardware-mismatch`): {comparison.hardware_mismatch}")
    lines += [f"- note: {note}" for note in comparison.notes]
    lines += [
        f"- time: a regression when the median step time is more than {thresholds.time:.0%} slower and the "
        f"slowdown is significant ({DESCRIPTION}, alpha {thresholds.alpha}); the change column shows the interval",
        f"- memory: peak memory more than {thresholds.memory:.0%} higher; parameters: "
        + ("changes allowed" if thresholds.allow_param_change else "any change"),
        "",
        "| cell | figure | baseline | current | change | verdict |",
        "|---|---|---:|---:|---:|---|",
    ]
    for figure in _ordered(comparison):
        verdict = VERDICT_MARKS[figure.verdict] + (f" ({figure.detail})" if figure.detail else "")
        lines.append(
            f"| `{figure.cell}` | {FIGURE_NAMES[figure.figure]} | {_value(figure.figure, figure.baseline)} | "
            f"{_value(figure.figure, figure.current)} | {_change(figure)} | {verdict.replace('|', '/')} |"
        )
    if comparison.failed_in_current:
        lines += ["", "**Failed in the current results** (nothing measured, not judged):"]
        lines += [f"- `{cell}`" for cell in comparison.failed_in_current]
    if comparison.skipped_in_current:
        lines += ["", "**Skipped in the current results** (not run on this machine by design, not judged):"]
        lines += [f"- `{cell}`" for cell in comparison.skipped_in_current]
    if comparison.only_in_baseline:
        lines += ["", "**Only in the baseline** (not run now, not compared):"]
        lines += [f"- `{label}`" for label in comparison.only_in_baseline]
    if comparison.only_in_current:
        lines += ["", "**Only in the current results** (new, nothing to compare against):"]
        lines += [f"- `{label}`" for label in comparison.only_in_current]
    return "\n".join(lines) + "\n"


def render_json(comparison: Comparison) -> str:
    document = {
        "verdict": "fail" if comparison.exit_code else "pass",
        "exit_code": comparison.exit_code,
        "exit_meaning": EXIT_CODES[comparison.exit_code],
        "counts": dict(comparison.counts()),
        "baseline": {"path": str(comparison.baseline.path), "rows": comparison.baseline.rows.height},
        "current": {"path": str(comparison.current.path), "rows": comparison.current.rows.height},
        "hardware": comparison.current.hardware(),
        "hardware_mismatch_allowed": comparison.hardware_mismatch,
        "notes": list(comparison.notes),
        "thresholds": vars(comparison.thresholds),
        "time_test": DESCRIPTION,
        "figures": [
            {
                "cell": f.cell,
                "config_id": f.config_id,
                "figure": f.figure,
                "baseline": f.baseline,
                "current": f.current,
                "change": f.change,
                "change_interval": list(f.interval) if f.interval else None,
                "verdict": f.verdict,
                "detail": f.detail,
            }
            for f in _ordered(comparison)
        ],
        "only_in_baseline": comparison.only_in_baseline,
        "only_in_current": comparison.only_in_current,
        "failed_in_current": list(comparison.failed_in_current),
        "skipped_in_current": list(comparison.skipped_in_current),
    }
    return json.dumps(document, indent=2) + "\n"
