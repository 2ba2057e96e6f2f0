"""The leaderboard as text on stdout: a terminal table, Markdown, CSV or JSON."""

from __future__ import annotations

import sys

from benchmark.report.render import render_csv, render_json, render_markdown, render_table
from benchmark.report.writers import ReportRequest, ReportWriter, register_writer


def _table(request: ReportRequest) -> None:
    render_table(request.board, request.console, request.columns)


def _markdown(request: ReportRequest) -> None:
    sys.stdout.write(render_markdown(request.board, request.columns))


def _csv(request: ReportRequest) -> None:
    sys.stdout.write(render_csv(request.board))


def _json(request: ReportRequest) -> None:
    sys.stdout.write(render_json(request.board))


register_writer(
    ReportWriter("table", "a table that fits the terminal (--wide: every column)", _table, chooses_columns=True)
)
register_writer(ReportWriter("md", "a Markdown table with its notes", _markdown, chooses_columns=True))
register_writer(ReportWriter("csv", "every column, one line per configuration", _csv))
register_writer(ReportWriter("json", "every column, one object per configuration", _json))
