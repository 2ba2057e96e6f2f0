"""A report writer: the leaderboard as a LaTeX table (booktabs) for a paper, on stdout.

Install with MMBENCH_PLUGINS=latex_report; then `mmbench report --format latex > table.tex`.
"""

import sys

from benchmark.report.writers import ReportRequest, ReportWriter, register_writer

COLUMNS = (  # (leaderboard column, header, format)
    ("method", "Method", "{}"),
    ("trainable_params", "Trainable", "{:,.0f}"),
    ("step_ms_median", "Step (ms)", "{:.1f}"),
    ("tpme", "TPME", "{:.3f}"),
)


def _cell(value: object, pattern: str) -> str:
    if value is None:
        return "--"
    return pattern.format(value).replace("_", r"\_").replace("%", r"\%")


def write_latex(request: ReportRequest) -> None:
    table = request.board.table
    present = [column for column in COLUMNS if column[0] in table.columns]
    lines = [r"\begin{tabular}{l" + "r" * (len(present) - 1) + "}", r"\toprule"]
    lines.append(" & ".join(header for _, header, _ in present) + r" \\")
    lines.append(r"\midrule")
    for row in table.iter_rows(named=True):
        lines.append(" & ".join(_cell(row[name], pattern) for name, _, pattern in present) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    sys.stdout.write("\n".join(lines) + "\n")


register_writer(ReportWriter("latex", "a LaTeX booktabs table of the leaderboard", write_latex))
