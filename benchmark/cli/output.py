"""How the commands print: data on stdout, progress and diagnostics on stderr, JSON where a machine reads it, and
one line (never a traceback) for an error, with an exit code that means one thing."""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, NoReturn

import typer
from rich.console import Console

from benchmark.errors import SuiteError

# Off a terminal (CI logs, pipes) rich would squeeze tables into 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
stderr = Console(stderr=True, soft_wrap=True)  # a wrapped path is a broken path


class OutputClosed(Exception):
    """stdout's reader went away (`mmbench report | head -1`): what is left to print has nowhere to go."""


class ClosedPipeGuard:
    """sys.stdout, whose writes turn a broken pipe into OutputClosed (click would make it exit 1, an exit code a CI
    job reads as failure) after pointing stdout at /dev/null, so that nothing fails again at interpreter exit."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _closed(self) -> OutputClosed:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        return OutputClosed()

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise self._closed() from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise self._closed() from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def say(text: str) -> None:
    """Data for the user, on stdout, printed as is (no rich markup or highlighting)."""
    stdout.print(text, markup=False, highlight=False)


def note(text: str) -> None:
    """Progress and diagnostics, on stderr, printed as is."""
    stderr.print(text, markup=False, highlight=False)


def warn_all(warnings: list[str]) -> None:
    for warning in warnings:
        note(f"warning: {warning}")


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_data(data: object, as_json: bool, lines: list[str]) -> None:
    """`data` as JSON with --json, else the human-readable `lines`."""
    if as_json:
        print_json(data)
        return
    for line in lines:
        say(line)


def fail(error: Exception, code: int = 2) -> NoReturn:
    """Bad input: every problem on stderr, one per line, and exit `code` (2: unusable input)."""
    if isinstance(error, SuiteError):
        for problem in error.problems:
            note(f"error: {problem}")
    else:
        note(f"error: {error}")
    raise typer.Exit(code)


def internal_error(command: str, error: Exception, code: int) -> NoReturn:
    """A bug, said in one line with its own exit code; MMBENCH_DEBUG=1 shows the traceback."""
    if os.environ.get("MMBENCH_DEBUG"):
        traceback.print_exception(error)
    note(
        f"internal error in `mmbench {command}` ({type(error).__name__}: {error}); this is a bug in mmbench: "
        "please report it with the output of MMBENCH_DEBUG=1"
    )
    raise typer.Exit(code)
