"""Compare two result sets: match configurations, refuse other hardware, judge every shared figure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmark.analysis.versions import transformers_versions
from benchmark.compare.sides import CompareInputError, Side, hardware_mismatch, load_side
from benchmark.compare.verdicts import FigureComparison, Thresholds, Verdict, compare_configuration

# Exit codes: the CI gate's contract; each means one thing. Where several hold, the first in this order wins:
# unusable input, a regression, failed cells in the current side, inconclusive figures (asked), pass.
EXIT_OK = 0  # every shared figure is unchanged, improved or (allowed) changed
EXIT_REGRESSION = 1  # a figure measured on both sides regressed (or a configuration that ran now runs out of memory)
EXIT_UNUSABLE = 2  # the input cannot be compared: missing, empty or unreadable sides, other hardware, nothing shared
EXIT_FAILED_CELLS = 3  # no regression, but cells of the current side failed (error, crash, timeout): not judged
EXIT_INCONCLUSIVE = 4  # only with --fail-on-inconclusive: nothing worse, but a figure could not be decided
EXIT_INTERNAL = 70  # a bug in mmbench (EX_SOFTWARE), never a verdict
EXIT_CODES = {
    EXIT_OK: "pass",
    EXIT_REGRESSION: "regression",
    EXIT_UNUSABLE: "unusable input",
    EXIT_FAILED_CELLS: "failed cells in the current side",
    EXIT_INCONCLUSIVE: "inconclusive (--fail-on-inconclusive)",
    EXIT_INTERNAL: "internal error",
}


@dataclass(frozen=True)
class Comparison:
    baseline: Side
    current: Side
    thresholds: Thresholds
    figures: list[FigureComparison]
    only_in_baseline: list[str]  # configurations the current side did not run (not compared)
    only_in_current: list[str]  # new configurations (nothing to compare against)
    hardware_mismatch: str | None  # set when the sides differ and the mismatch was allowed
    fail_on_inconclusive: bool = False
    notes: tuple[str, ...] = ()  # what the reader must know to read the verdicts
    failed_in_current: tuple[str, ...] = ()  # cells whose latest current row failed, named with status and error
    # cells the current machine did not run by design (a quantized base without a GPU): not failures, not judged;
    # a figure the baseline measured is then inconclusive, which --fail-on-inconclusive turns into exit 4
    skipped_in_current: tuple[str, ...] = ()

    def counts(self) -> Counter[Verdict]:
        return Counter(figure.verdict for figure in self.figures)

    @property
    def exit_code(self) -> int:
        counts = self.counts()
        if counts["regression"]:
            return EXIT_REGRESSION
        if self.failed_in_current:
            return EXIT_FAILED_CELLS
        if self.fail_on_inconclusive and counts["inconclusive"]:
            return EXIT_INCONCLUSIVE
        return EXIT_OK


def _labels(side: Side, config_ids: list[str]) -> list[str]:
    labels = dict(zip(side.rows["config_id"], side.rows["config_label"]))
    return sorted(f"{labels[config_id]} ({config_id[:8]})" for config_id in config_ids)


def compare_results(
    baseline_path: Path,
    current_path: Path,
    thresholds: Thresholds,
    allow_hardware_mismatch: bool = False,
    suite: str | None = None,
    fail_on_inconclusive: bool = False,
) -> Comparison:
    baseline = load_side(baseline_path, "baseline", suite)
    current = load_side(current_path, "current", suite)
    mismatch = hardware_mismatch(baseline, current)
    if mismatch is not None and not allow_hardware_mismatch:
        raise CompareInputError(
            f"refusing to compare timings across hardware: {mismatch} (--allow-hardware-mismatch to compare anyway)"
        )
    base_configs, current_configs = baseline.configurations(), current.configurations()
    shared = [config_id for config_id in base_configs if config_id in current_configs]
    if not shared:
        raise CompareInputError(
            f"no configuration of the baseline ({len(base_configs)}) was run in the current side "
            f"({len(current_configs)}): nothing to compare (same suite? same settings?)"
        )
    figures = []
    for config_id in shared:
        label = str(current_configs[config_id]["config_label"][0])
        figures.extend(
            compare_configuration(label, config_id, base_configs[config_id], current_configs[config_id], thresholds)
        )
    return Comparison(
        baseline,
        current,
        thresholds,
        figures,
        _labels(baseline, [c for c in base_configs if c not in current_configs]),
        _labels(current, [c for c in current_configs if c not in base_configs]),
        mismatch,
        fail_on_inconclusive,
        _version_notes(baseline, current),
        tuple(current.failed_cells()),
        tuple(current.skipped_cells()),
    )


def _version_notes(baseline: Side, current: Side) -> tuple[str, ...]:
    """Accuracy is never compared here; say why it must not be when the sides ran different transformers."""
    before, after = transformers_versions(baseline.rows), transformers_versions(current.rows)
    if before == after:
        return ()
    return (
        f"transformers differs (baseline {', '.join(before) or '?'}; current {', '.join(after) or '?'}): "
        "random-weight towers are initialised differently across transformers versions, so accuracy columns of "
        "the two sides are not comparable (compare never compares them); efficiency figures are unaffected",
    )
