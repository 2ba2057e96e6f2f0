"""`mmbench estimate`: a suite's memory and time predicted per cell before it runs; `estimate calibrate RESULTS`
fits the time and memory factors from measured rows; `estimate --check RESULTS` sets rows' predictions against
their measurements."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import JSON_HELP, app
from benchmark.cli.output import fail, note, print_json, stdout
from benchmark.errors import MMBenchError


@app.command()
def estimate(
    target: list[str] = typer.Argument(None, metavar="SUITE | calibrate RESULTS", show_default=False),
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
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Predict every cell's peak memory (in parts) and step and epoch time without loading any weight, and whether
    it fits the device and the common cards (24, 40, 48, 80, 141 GB).

    Example: mmbench estimate suites/iisan-paper.yaml --device h100
    """
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
