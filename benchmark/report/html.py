"""`mmbench report --format html`: one self-contained file (plotly.js, styles and scripts inlined; it opens
with no network) with the leaderboard per group (sortable, caveats marked), the trade-off plots, the
failures and the provenance of every row.

plotly is the `report` extra; it is imported only here and in html_figures.py (its figures), with a clear
message when missing; the page's stylesheet and script are in html_assets.py.
"""

from __future__ import annotations

import html
import json

import polars as pl

from benchmark.analysis.leaderboard import CAVEATS, Leaderboard, with_hardware
from benchmark.report.columns import (
    SCALING_HEADERS,
    SCALING_NOTE,
    cost_rows,
    display_rows,
    interval_note,
    scaling_display,
    weights_line,
)
from benchmark.report.figures import PLOTS, Group, groups, learning_curves, memory_stack, method_colours
from benchmark.report.figures import tpme_bars as tpme_terms_of
from benchmark.report.html_assets import SCRIPT, STYLE
from benchmark.report.html_figures import (
    figure_html,
    import_plotly,
    memory_figure,
    pareto_figure,
    scaling_figures,
    tpme_figure,
    tradeoff_figure,
    tta_figure,
)
from benchmark.report.render import COST_NOTE


def _table_html(all_rows: list[dict[str, str]], group: Group, table_id: str) -> str:
    rows = [row for row in all_rows if row["group"] == group.label]
    if not rows:
        return ""
    columns = [c for c in rows[0] if c != "group"]
    head = "".join(f'<th data-column="{index_}">{html.escape(c)}</th>' for index_, c in enumerate(columns))
    # Lists (a variant's keys, caveat codes) wrap, so that they do not push the figures off to the right.
    wrap = {c: ' class="wrap"' if c in ("variant", "caveats") else "" for c in columns}
    body = "".join(
        "<tr>" + "".join(f"<td{wrap[c]}>{html.escape(str(row[c]))}</td>" for c in columns) + "</tr>" for row in rows
    )
    table = f'<table class="board" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="board-wrap">{table}</div>'


def _ranks_html(board: Leaderboard) -> str:
    """The scaling table (the same configuration on more ranks), one per family; '' when there is none."""
    families = scaling_display(board)
    if not families:
        return ""
    parts = ["<h2>Scaling over ranks</h2>", f"<p class='caption'>{html.escape(SCALING_NOTE)}</p>"]
    head = "".join(f"<th>{html.escape(header)}</th>" for header in SCALING_HEADERS)
    for family, members in families.items():
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(row[header])}</td>" for header in SCALING_HEADERS) + "</tr>"
            for row in members
        )
        parts.append(
            f"<h3>{html.escape(family)}</h3><div class='board-wrap'><table class='board'><thead><tr>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table></div>"
        )
    return "".join(parts)


def _failures_html(board: Leaderboard) -> str:
    if board.failures.is_empty():
        return "<p>No cell failed or was skipped.</p>"
    items = "".join(
        f"<li><b>{html.escape(str(r['status']))}</b> {html.escape(str(r['cell_id']))}: "
        f"{html.escape(((r['error'] or '').splitlines() or [''])[0])}</li>"
        for r in board.failures.iter_rows(named=True)
    )
    return f"<ul>{items}</ul>"


def _not_measured(board: Leaderboard) -> str:
    """'N failed', and 'M skipped' where cells were not run on that machine by design."""
    skipped = board.failures.filter(pl.col("status") == "skipped").height
    failed = f"{board.failures.height - skipped} failed"
    return f"{failed}, {skipped} skipped" if skipped else failed


def _distinct(rows: pl.DataFrame, column: str, none: str = "—") -> str:
    if column not in rows.columns:
        return none
    values = sorted({str(v) for v in rows[column].to_list() if v is not None})
    return html.escape(", ".join(values) or none)


def _provenance_html(board: Leaderboard, rows: pl.DataFrame) -> str:
    packages: dict[str, set[str]] = {}
    for text in rows["package_versions"].drop_nulls().to_list():
        for name, version in json.loads(text).items():
            packages.setdefault(name, set()).add(str(version))
    package_text = "; ".join(f"{name} {'/'.join(sorted(v))}" for name, v in sorted(packages.items()))
    none = "none (CPU only)" if rows["gpu_name"].drop_nulls().is_empty() else "—"
    used = set(board.table["config_id"].to_list()) if not board.table.is_empty() else set()
    superseded = rows.filter(pl.col("status") == "ok").height - board.table["runs"].sum() if used else 0
    items = [
        ("suites", _distinct(rows, "suite")),
        ("runs", _distinct(rows, "run_id")),
        (
            "git",
            _distinct(
                rows.with_columns(
                    pl.concat_str(
                        [pl.col("git_sha"), pl.when(pl.col("git_dirty")).then(pl.lit(" (dirty)")).otherwise(pl.lit(""))]
                    ).alias("git")
                ),
                "git",
            ),
        ),
        ("mmbench", _distinct(rows, "mmbench_version")),
        # The rows as read have no 'hardware' (the leaderboard derives it): a CPU run showed "hardware —".
        ("hardware", _distinct(with_hardware(rows), "hardware")),
        ("driver", _distinct(rows, "driver_version", none)),
        ("CUDA", _distinct(rows, "cuda_version", none)),
        ("torch", _distinct(rows, "torch_version")),
        ("packages", html.escape(package_text or "—")),
        (
            "rows",
            f"{rows.height} read; {int(board.table['runs'].sum()) if used else 0} on the leaderboard; "
            f"{_not_measured(board)} (listed above); {max(int(superseded), 0)} superseded by a later "
            "run of the same cell (--all-runs keeps them)",
        ),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def render_html(board: Leaderboard, rows: pl.DataFrame) -> str:
    go = import_plotly()
    from plotly.offline import get_plotlyjs

    sections = []
    board_rows, costs = display_rows(board), cost_rows(board)
    colours = method_colours(board)  # once for the whole report: a method keeps its colour in every plot
    for index, group in enumerate(groups(board)):
        plots = [
            figure_html(tradeoff_figure(go, group, colours), f"tradeoff-{index}"),
            figure_html(
                pareto_figure(go, group, "peak_mem_gib", "peak memory (GiB)", colours), f"pareto-memory-{index}"
            ),
            figure_html(pareto_figure(go, group, "epoch_s", "epoch time (s)", colours), f"pareto-time-{index}"),
        ]
        if tpme_terms_of(group, board.weights):
            plots.append(figure_html(tpme_figure(go, group, board.weights), f"tpme-{index}"))
        if memory_stack(group)[0]:
            plots.append(figure_html(memory_figure(go, group), f"memory-{index}"))
        if learning_curves(group):
            plots.append(figure_html(tta_figure(go, group, colours), f"tta-{index}"))
        sections.append(
            f"<h2>{html.escape(group.label)}</h2><p class='caption'>{html.escape(group.caption)}</p>"
            f"{_table_html(board_rows, group, f'board-{index}')}<h3>Where the cost goes</h3>"
            f"{_table_html(costs, group, f'cost-{index}')}<div class='plots'>{''.join(plots)}</div>"
        )
    scaling = scaling_figures(go, board, colours)
    if scaling:
        sections.append("<h2>Scaling</h2>")
        sections.append(
            "<div class='plots'>"
            + "".join(
                f"<div><p class='caption'>{html.escape(context)}</p>{figure_html(figure, f'scaling-{i}')}</div>"
                for i, (context, figure) in enumerate(scaling)
            )
            + "</div>"
        )
    sections.append(_ranks_html(board))
    caveats = "".join(f"<li><b>{html.escape(code)}</b>: {html.escape(text)}</li>" for code, text in CAVEATS.items())
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in (weights_line(board), interval_note(board), COST_NOTE))
    notes = f"<ul class='notes'>{notes}</ul>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mmbench report</title>
<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>
<body><h1>mmbench report</h1>
<p class="caption">Grouped by {html.escape(" / ".join(board.group_by))}: rows are only compared inside a group.
Plots: {html.escape("; ".join(f"{k}: {v}" for k, v in PLOTS.items()))}.</p>
{notes}
{"".join(sections) or "<p>No successful cell to show.</p>"}
<h2>Caveat marks</h2><ul class='notes'>{caveats}</ul>
<h2>Failures and skipped cells</h2>{_failures_html(board)}
<h2>Provenance</h2>{_provenance_html(board, rows)}
<script>{SCRIPT}</script>
</body></html>
"""
