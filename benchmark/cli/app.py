"""The `mmbench` program: one Typer application that each command module adds its commands to."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from benchmark import __version__
from benchmark.cli.output import ClosedPipeGuard, OutputClosed

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark what adapting multimodal foundation models to sequential recommendation costs.",
)

DEFAULT_RESULTS = Path("results")
JSON_HELP = "machine-readable output"


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mmbench {__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Benchmark what adapting multimodal foundation models to sequential recommendation costs.

    Start with `mmbench run suites/smoke.yaml` and `mmbench report`.
    """


def main() -> None:
    """The `mmbench` program: the commands, with `| head` ending it quietly with exit 0."""
    sys.stdout = ClosedPipeGuard(sys.stdout)
    try:
        app()
    except OutputClosed:
        sys.exit(0)
