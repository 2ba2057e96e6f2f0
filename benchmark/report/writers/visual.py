"""The leaderboard as a file: the self-contained HTML report, or one figure as PNG or SVG."""

from __future__ import annotations

from benchmark.errors import MMBenchError
from benchmark.report.html import render_html
from benchmark.report.static import write_figure
from benchmark.report.writers import ReportRequest, ReportWriter, register_writer


def _html(request: ReportRequest) -> None:
    assert request.output is not None  # ReportWriter.check: a file writer has -o
    request.output.write_text(render_html(request.board, request.rows), encoding="utf-8")


def _figure(image_format: str) -> ReportWriter:
    def write(request: ReportRequest) -> None:
        assert request.output is not None  # ReportWriter.check: a file writer has -o
        if request.plot is None:
            raise MMBenchError(f"--format {image_format} draws one figure: add --plot NAME")
        write_figure(request.board, request.plot, request.output, image_format)

    return ReportWriter(image_format, f"one figure (--plot NAME) as {image_format.upper()}", write, writes_file=True)


register_writer(ReportWriter("html", "the interactive report in one file", _html, writes_file=True))
register_writer(_figure("png"))
register_writer(_figure("svg"))
