"""`mmbench estimate`: a suite's memory and time predicted per cell before it runs; `estimate calibrate RESULTS`
fits the time and memory factors from measured rows; `estimate --check RESULTS` sets rows' predictions against
their measurements."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from benchmark.cli.app import JSON_HELP, app
from benchmark.cli.output import fail, note, print_json, say, stdout
from benchmark.errors import MMBenchError


@app.command()
def estimate(
    target: list[str] | None = typer.Argument(None, metavar="SUITE | calibrate RESULTS", show_default=False),
    device: str | None = typer.Option(
        None, "--device", help="price on this card (h100, a100 40gb, l40s, rtx 4090, h200, ...) or cpu"
    ),
    memory: float | None = typer.Option(None, "--memory", min=0.1, help="a GPU of this many GiB (fit only)"),
    only: str | None = typer.Option(None, "--only", help="only cells whose id matches this glob"),
    overrides: list[str] | None = typer.Option(None, "--set", help="override a suite value (repeatable)"),
    calibration: str | None = typer.Option(
        None,
        "--calibration",
        help="calibration file (default: the suite's run.estimate_calibration, then $MMBENCH_ESTIMATE_CALIBRATION)",
    ),  # fmt: skip
    check: Path | None = typer.Option(
        None,
        "--check",
        help="RESULTS: set every row's prediction against its measurement (errors per cell and method); with "
        "--calibration, every row estimated again with that calibration",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="calibrate: the file to write (default: RESULTS/estimate-calibration.json)"
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Predict every cell's peak memory (in parts) and step and epoch time without loading any weight, and whether
    it fits the device and the common cards (24, 40, 48, 80, 141 GB).

    `mmbench estimate calibrate RESULTS` fits the time factor of each method and the memory relations of each device
    from measured rows, into a file a suite (run.estimate_calibration) or MMBENCH_ESTIMATE_CALIBRATION points at.
    `mmbench estimate --check RESULTS` prints each row's predicted against measured memory and step time, with the
    median and worst error per method.

    Example: mmbench estimate suites/iisan-paper.yaml --device h100
    """
    if check is not None:
        if target:
            fail(MMBenchError(f"--check reads a results directory: drop '{' '.join(target)}'"))
        _check(check, calibration, as_json)
        return
    if target and target[0] == "calibrate":
        if len(target) != 2:
            fail(MMBenchError("name one results directory: mmbench estimate calibrate RESULTS [--out FILE]"))
        _calibrate(Path(target[1]), out, as_json)
        return
    if not target or len(target) != 1:
        fail(MMBenchError("name one suite: mmbench estimate SUITE (or: mmbench estimate calibrate RESULTS)"))
    from benchmark.api.estimates import estimate_suite
    from benchmark.report.estimates import estimate_dicts, estimate_notes, estimate_table

    try:
        result = estimate_suite(
            Path(target[0]),
            device=device,
            memory_gib=memory,
            overrides=overrides,
            only=only,
            calibration=calibration,
        )
    except MMBenchError as error:
        fail(error)
    if as_json:
        print_json({"suite": result.suite, "device": result.target.why, "cells": estimate_dicts(result.cells)})
        return
    stdout.print(estimate_table(f"{result.suite} on {result.target.why}", result.cells))
    for line in estimate_notes(result.cells):
        note(line)


def _calibrate(results: Path, out: Path | None, as_json: bool) -> None:
    from benchmark.atomic import atomic_file
    from benchmark.estimate.against_rows import fit_calibration

    try:
        calibration, notes = fit_calibration(results)
    except MMBenchError as error:
        fail(error)
    for line in notes:
        note(f"note: {line}")
    if not calibration.devices:
        fail(MMBenchError(f"{results}: no ok row could be priced, nothing to calibrate"))
    target = out or (results if results.is_dir() else results.parent) / "estimate-calibration.json"
    with atomic_file(target) as staging:
        staging.write_text(calibration.to_json())
    if as_json:
        print_json({"calibration": str(target), **json.loads(calibration.to_json())})
        return
    for label, device in sorted(calibration.devices.items()):
        factors = ", ".join(f"{method} {factor:.3g}" for method, factor in sorted(device.time_factor.items()))
        say(f"{label}: time factor per method: {factors or '-'}")
        say(
            f"{label}: torch allocated / predicted {device.allocated_ratio:.3f}, reserved / allocated "
            f"{device.reserved_ratio:.3f}, context {device.context_gib:.2f} GiB ({device.memory_rows} row(s))"
        )
    note(f"wrote {target}: point a suite's run.estimate_calibration or MMBENCH_ESTIMATE_CALIBRATION at it")


def _most_under(error: float) -> str:
    """The most negative error (an under-prediction is an OOM waiting to happen), or that there was none."""
    return f"most under {error * 100:+.1f}%" if error < 0 else "never under"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def _check(results: Path, calibration: str | None, as_json: bool) -> None:
    from benchmark.estimate.against_rows import FIGURES, check_rows, summarize
    from benchmark.estimate.calibration import find_calibration

    try:
        # With --calibration: every row estimated again with it (what would this calibration have predicted?).
        checks, notes = check_rows(results, find_calibration(calibration), estimate_again=calibration is not None)
    except MMBenchError as error:
        fail(error)
    for line in notes:
        note(f"note: {line}")
    summary = summarize(checks)
    if as_json:
        rows = [{**asdict(check), "errors": {figure: check.error(figure) for figure in FIGURES}} for check in checks]
        print_json({"rows": rows, "per_method": summary})
        return
    say("cell | device | source | peak allocated (pred/meas GiB, err) | peak process | step (pred/meas ms, err)")
    for check in checks:
        shown = []
        for figure in FIGURES:
            predicted, measured = check.predicted.get(figure), check.measured.get(figure)
            pair = "-" if predicted is None or measured is None else f"{predicted:.3g}/{measured:.3g}"
            shown.append(f"{pair} {_percent(check.error(figure))}")
        say(f"{check.cell_id} | {check.device} | {check.source} | " + " | ".join(shown))
    for method, per_figure in summary.items():
        parts = [
            f"{figure}: median {values['median_abs'] * 100:.1f}%, worst {values['worst_abs'] * 100:.1f}%, "
            f"{_most_under(values['most_under'])} ({values['rows']} rows)"
            for figure, values in per_figure.items()
        ]
        say(f"{method}: " + "; ".join(parts))
