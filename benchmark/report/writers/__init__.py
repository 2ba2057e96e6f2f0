"""Report writers, registered by name like methods: `mmbench report --format NAME` picks one. A writer is one
module here (or in a plug-in named in MMBENCH_PLUGINS) that calls `register_writer`; it gets the leaderboard, the
rows it was built from and the command's output settings, and prints to stdout or writes its file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from rich.console import Console

from benchmark.analysis.leaderboard import Leaderboard
from benchmark.errors import MMBenchError
from benchmark.registry import Registry
from benchmark.report.render import Choice


@dataclass(frozen=True)
class ReportRequest:
    board: Leaderboard  # one row per configuration
    rows: pl.DataFrame  # the result rows it was built from
    console: Console  # where a terminal table goes
    output: Path | None = None  # -o
    plot: str | None = None  # --plot
    columns: Choice | None = None  # --wide / --columns; None: the writer's own choice


@dataclass(frozen=True)
class ReportWriter:
    name: str
    description: str
    write: Callable[[ReportRequest], None]
    writes_file: bool = False  # needs -o
    chooses_columns: bool = False  # accepts --wide and --columns

    def check(self, request_output: Path | None, wants_columns: bool) -> None:
        """Refuse, before anything is read, an output or column choice this writer cannot honour."""
        if self.writes_file and request_output is None:
            raise MMBenchError(f"--format {self.name} writes a file: add -o FILE")
        if wants_columns and not self.chooses_columns:
            choosers = [w.name for w in REPORT_WRITERS.entries() if w.chooses_columns]
            listed = ", ".join(choosers[:-1]) + " or " + choosers[-1] if len(choosers) > 1 else "".join(choosers)
            raise MMBenchError(f"--wide and --columns choose the columns of --format {listed}")


REPORT_WRITERS: Registry[ReportWriter] = Registry("report format", package="benchmark.report.writers")


def register_writer(writer: ReportWriter) -> ReportWriter:
    return REPORT_WRITERS.register(writer.name, writer)


def writer_names(plugins: bool = True) -> list[str]:
    return REPORT_WRITERS.names(plugins)


def get_writer(name: str) -> ReportWriter:
    return REPORT_WRITERS.get(name)
