"""`mmbench results compact` and `mmbench cache build|list`: the results store and the hidden-state caches."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import DEFAULT_RESULTS, JSON_HELP, app
from benchmark.cli.output import fail, print_data, print_json, stderr
from benchmark.errors import MMBenchError
from benchmark.launch.cache_command import build_suite_caches
from benchmark.results.compact_store import compact_store
from benchmark.units import MIB

results_app = typer.Typer(no_args_is_help=True, help="The results store.")
app.add_typer(results_app, name="results")
cache_app = typer.Typer(no_args_is_help=True, help="Hidden-state caches of the cached methods.")
app.add_typer(cache_app, name="cache")


@results_app.command("compact")
def results_compact(
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="results directory (or one run directory)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Merge each finished run's per-cell Parquet files into one file per run (`compacted.parquet`).

    Safe at any moment: a kill loses and doubles no row (see README: Results at scale). Runs still running are
    left alone. `mmbench run` does this itself when a run ends.

    Example: mmbench results compact --results results
    """
    try:
        outcomes = compact_store(results)
    except MMBenchError as error:
        fail(error)
    if as_json:
        print_json([outcome.to_dict() for outcome in outcomes])
        return
    for outcome in outcomes:
        typer.echo(outcome.line())


@cache_app.command("build")
def cache_build(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    only: str | None = typer.Option(None, "--only", help="only cells whose id matches this glob"),
    overrides: list[str] | None = typer.Option(None, "--set", help="override a suite value (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Build (or find) every hidden-state cache the suite's cached cells train from.

    Example: mmbench cache build suites/iisan-paper.yaml --only '*/iisan_cached/*'
    """
    # Imported when the command runs: the suite's methods import torch (seconds), which `--help`, `report` and
    # `compare` never need.
    from benchmark.api.runs import select_cells
    from benchmark.plan.loader import load_suite

    try:
        entries = build_suite_caches(select_cells(load_suite(suite, overrides), only, suite), stderr)
    except MMBenchError as error:
        fail(error)
    lines = [
        f"skipped caches for {entry['cell_id']}: {entry['reason']}"
        if entry["status"] == "skipped"
        else f"{entry['status']} {entry['modality']} cache for {entry['cell_id']}: {entry['directory']} "
        f"({entry['bytes'] / MIB:.1f} MiB, build {entry['build_seconds']:.1f} s)"
        for entry in entries
    ]
    print_data(entries, as_json, lines or ["no cell of this suite uses a cache"])


@cache_app.command("list")
def cache_list(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the hidden-state caches under $MMBENCH_CACHE.

    Example: mmbench cache list --json
    """
    from benchmark.data.hidden_state_store import list_caches  # imports torch (seconds): only for this command

    entries = list_caches()
    lines = [
        f"{entry['digest']}  {entry['tower']}  layers={entry['layers']}  {entry['input']}  {entry['precision']}  "
        f"items={entry['n_items']}  {entry['bytes'] / MIB:.1f} MiB  built in {entry['build_seconds']:.1f} s"
        for entry in entries
    ]
    print_data(entries, as_json, lines)
