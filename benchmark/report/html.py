"""`mmbench report --format html`: one self-contained file (plotly.js, styles and scripts inlined; it opens
with no network) with the leaderboard per group (sortable, caveats marked), the trade-off plots, the
failures and the provenance of every row.

plotly is the `report` extra; it is imported only here, with a clear message when missing.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import polars as pl

from benchmark.analysis.leaderboard import CAVEATS, Leaderboard, with_hardware
from benchmark.errors import MMBenchError
from benchmark.report.columns import cost_rows, display_rows, interval_note, weights_line
from benchmark.report.figures import (
    MEMORY_PARTS,
    PLOTS,
    Canvas,
    Group,
    accuracy_members,
    accuracy_points,
    baseline_sides,
    colour_of,
    dash_index,
    groups,
    label_offsets,
    learning_curves,
    marker_scale,
    memory_stack,
    method_colours,
    method_name,
    needs_log_axis,
    pareto_front,
    scaling_series,
)
from benchmark.report.figures import tpme_bars as tpme_terms_of
from benchmark.report.render import COST_NOTE

PLOT_HEIGHT = 420


def import_plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as error:
        raise MMBenchError(
            "--format html needs plotly: pip install 'mmbench[report]' (or pip install plotly)"
        ) from error
    return go


def _error(member: dict[str, Any], column: str) -> tuple[float, float] | None:
    low, high = member.get(f"{column}_lo"), member.get(f"{column}_hi")
    if low is None or high is None:
        return None
    return (member[column] - low, high - member[column])


# Where plotly draws a plot, in pixels, to place labels: a cell of the plot grid is at least 520 px wide and
# PLOT_HEIGHT tall, less the margins; plotly's 12-px sans-serif is about 7 px a character.
CANVAS = Canvas(width=440, height=310, char_width=7.0, line_height=15, gap=8)


def _labels(
    figure: Any, points: list[tuple[float, float, str, str]], log: tuple[bool, bool], gap: float, y_also: list[float]
) -> None:
    """Each point's name (x, y, name, colour) as an annotation placed by `label_offsets`, so that no two overlap; a
    label pushed further away than the positions next to its point gets a leader line."""
    canvas = Canvas(CANVAS.width, CANVAS.height, CANVAS.char_width, CANVAS.line_height, gap)
    xs, ys, names = [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
    for (x, y, name, colour), (dx, dy) in zip(points, label_offsets(xs, ys, names, log, canvas, y_also)):
        width = canvas.char_width * len(name)
        leader = abs(dx) > gap + width / 2 + 1 or abs(dy) > gap + canvas.line_height / 2 + 1
        figure.add_annotation(
            # plotly places annotations on a log axis by the logarithm of the position
            x=math.log10(x) if log[0] and x > 0 else x,
            y=math.log10(y) if log[1] and y > 0 else y,
            text=html.escape(name),
            showarrow=True,
            ax=dx,
            ay=-dy,  # plotly's pixels grow downwards
            arrowhead=0,
            arrowwidth=0.7,
            arrowcolor="#888" if leader else "rgba(0,0,0,0)",
            font={"color": colour},
        )


def tradeoff_figure(go: Any, group: Group, colours: dict[str, str]) -> Any:
    figure = go.Figure()
    members = [m for m in group.members if m.get("epoch_s") is not None and m.get("peak_mem_gib") is not None]
    sizes = [12 + 38 * marker_scale(member, members) for member in members]
    for member, size in zip(members, sizes):
        x_error, y_error = _error(member, "epoch_s"), _error(member, "peak_mem_gib")
        figure.add_trace(
            go.Scatter(
                x=[member["epoch_s"]],
                y=[member["peak_mem_gib"]],
                mode="markers",
                name=method_name(member),
                marker={"size": size, "opacity": 0.75, "color": colour_of(member, colours)},
                error_x={"type": "data", "symmetric": False, "array": [x_error[1]], "arrayminus": [x_error[0]]}
                if x_error
                else None,
                error_y={"type": "data", "symmetric": False, "array": [y_error[1]], "arrayminus": [y_error[0]]}
                if y_error
                else None,
                hovertemplate=f"{method_name(member)}<br>epoch %{{x:.3g}} s<br>peak %{{y:.3g}} GiB<br>"
                f"trainable {member['trainable_params']:,}<extra></extra>",
            )
        )
    log = (needs_log_axis([m["epoch_s"] for m in members]), needs_log_axis([m["peak_mem_gib"] for m in members]))
    points = [(m["epoch_s"], m["peak_mem_gib"], method_name(m), colour_of(m, colours)) for m in members]
    _labels(figure, points, log, max(sizes, default=12) / 2 + 2, [])
    figure.update_layout(
        title="Memory vs time (size: trainable params; bars: 95% over runs)",
        showlegend=False,
        xaxis={"title": "epoch time (s)", "type": "log" if log[0] else "linear"},
        yaxis={"title": "peak memory (GiB)", "type": "log" if log[1] else "linear"},
    )
    return figure


BASELINES = (("pop_test_ndcg@10", "popularity"), ("random_test_ndcg@10", "random"))


def pareto_figure(go: Any, group: Group, cost: str, axis_title: str, colours: dict[str, str]) -> Any:
    points = accuracy_points(group, cost)
    members = accuracy_members(group, cost)
    front = pareto_front(points)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="markers",
            text=[p[2] for p in points],
            name="methods",
            marker={"size": 12, "color": [colour_of(m, colours) for m in members]},
            hovertemplate="%{text}<br>%{x:.3g}<br>NDCG@10 %{y:.4f}<extra></extra>",
        )
    )
    on_front = [p for p in sorted(points) if p[2] in front]
    figure.add_trace(
        go.Scatter(
            x=[p[0] for p in on_front],
            y=[p[1] for p in on_front],
            mode="lines",
            name="Pareto front",
            line={"dash": "dot", "color": "#444"},
            hoverinfo="skip",
        )
    )
    baselines = {key: group.baselines.get(key) for key, _ in BASELINES}
    sides = baseline_sides(baselines)
    for key, name in BASELINES:
        value = baselines[key]
        if value is not None:
            figure.add_hline(
                y=value,
                line_dash="dash",
                line_color="#888",
                annotation_text=f"{name} {value:.3f}",
                annotation_position="top right" if sides[key] == "above" else "bottom right",
            )
    log = (needs_log_axis([p[0] for p in points]), False)
    labelled = [(p[0], p[1], p[2], colour_of(m, colours)) for p, m in zip(points, members)]
    _labels(figure, labelled, log, 8, [v for v in baselines.values() if v is not None])
    figure.update_layout(
        title=f"NDCG@10 vs {axis_title.split(' (')[0]} (dotted: Pareto front)",
        showlegend=False,
        xaxis={"title": axis_title, "type": "log" if log[0] else "linear"},
        yaxis={"title": "test NDCG@10"},
    )
    return figure


def tpme_figure(go: Any, group: Group, weights: tuple[float, float, float]) -> Any:
    bars = tpme_terms_of(group, weights)
    figure = go.Figure()
    for index, (name, weight) in enumerate(zip(("time", "parameters", "memory"), weights)):
        figure.add_trace(go.Bar(x=[b[0] for b in bars], y=[b[index + 1] for b in bars], name=f"{name} (a={weight:g})"))
    figure.update_layout(
        barmode="stack", title="TPME per method (lower is better), terms stacked", yaxis={"title": "TPME"}
    )
    return figure


def memory_figure(go: Any, group: Group) -> Any:
    stacks, activations = memory_stack(group)
    figure = go.Figure()
    for key, label in MEMORY_PARTS:
        values = [parts[key] for _, parts in stacks]
        if any(values):
            name = f"activations ({activations})" if key == "activations" else label
            figure.add_trace(go.Bar(x=[method for method, _ in stacks], y=values, name=name))
    figure.update_layout(barmode="stack", title="Where memory goes (MiB)", yaxis={"title": "MiB"})
    return figure


def tta_figure(go: Any, group: Group, colours: dict[str, str]) -> Any:
    """One line per run, coloured by method; the runs of one configuration share one legend entry."""
    figure = go.Figure()
    shown: set[str] = set()
    for curve in learning_curves(group):
        name = method_name(curve.member)
        figure.add_trace(
            go.Scatter(
                x=curve.times,
                y=curve.scores,
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=name not in shown,
                line={
                    "color": colour_of(curve.member, colours),
                    "dash": DASHES[dash_index(curve.member, group.members)],
                },
                marker={"color": colour_of(curve.member, colours)},
            )
        )
        shown.add(name)
    figure.update_layout(
        title="Validation NDCG@10 vs training time",
        xaxis={"title": "training time, evaluation excluded (s)"},
        yaxis={"title": "validation NDCG@10"},
    )
    return figure


DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot") * 4


def scaling_figures(go: Any, board: Leaderboard, colours: dict[str, str]) -> list[tuple[str, Any]]:
    from plotly.subplots import make_subplots

    found = []
    for series in scaling_series(board):
        figure = make_subplots(rows=1, cols=3, subplot_titles=("epoch time (s)", "peak memory (GiB)", "test NDCG@10"))
        x = [p["x"] for p in series.points]
        for column, key in enumerate(("epoch_s", "peak_mem_gib", "test_ndcg@10"), start=1):
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=[p[key] for p in series.points],
                    mode="lines+markers",
                    name=key,
                    text=[p["towers"] for p in series.points],
                    showlegend=False,
                    line={"color": colours.get(series.method)},
                ),
                row=1,
                col=column,
            )
            figure.update_xaxes(title_text=series.axis, row=1, col=column)
        figure.update_layout(title=f"{series.method}: scaling against {series.axis}")
        found.append((f"{series.method} · {series.context}", figure))
    return found


def _figure_html(figure: Any, plot_id: str) -> str:
    figure.update_layout(height=PLOT_HEIGHT, margin={"t": 60, "b": 50, "l": 60, "r": 20}, template="plotly_white")
    figure.update_layout(autosize=True)
    body = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=plot_id,
        default_width="100%",
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="plot" data-plot="{plot_id}">{body}</div>'


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


def _failures_html(board: Leaderboard) -> str:
    if board.failures.is_empty():
        return "<p>No cell failed.</p>"
    items = "".join(
        f"<li><b>{html.escape(str(r['status']))}</b> {html.escape(str(r['cell_id']))}: "
        f"{html.escape(((r['error'] or '').splitlines() or [''])[0])}</li>"
        for r in board.failures.iter_rows(named=True)
    )
    return f"<ul>{items}</ul>"


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
            f"{board.failures.height} failed (listed above); {max(int(superseded), 0)} superseded by a later "
            "run of the same cell (--all-runs keeps them)",
        ),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-top:1.2em}
.caption{color:#555;font-size:.9em;margin:.2em 0 .6em}
table.board{border-collapse:collapse;font-size:.82em;margin:.5em 0}
table.board th,table.board td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
table.board th{background:#f4f4f4;cursor:pointer;position:sticky;top:0}
table.board th.sorted-asc::after{content:" ▲"}table.board th.sorted-desc::after{content:" ▼"}
.board-wrap{overflow-x:auto;max-width:100%}
table.board td.wrap{white-space:normal;min-width:9em;max-width:18em;text-align:left}
table.board th:first-child,table.board td:first-child{position:sticky;left:0;z-index:1;background:#fff;
  text-align:left;box-shadow:inset -1px 0 0 #bbb}
table.board th:first-child{z-index:2;background:#f4f4f4}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.plot{border:1px solid #eee;min-height:420px;min-width:0;overflow:hidden}
dl{display:grid;grid-template-columns:10em 1fr;gap:4px 12px;font-size:.9em}dt{font-weight:600}
.notes li{font-size:.9em}
"""

# Sorting: click a header (again to reverse); numbers sort as numbers, the rest as text.
# `#selftest` (used by the browser test) reports each plot's rendered box and a sort's effect in #selftest.
SCRIPT = """
function cellValue(row, index){
  const text = row.children[index].textContent.trim();
  const number = parseFloat(text.replace(/[,%x]/g, '').replace(/\\[.*$/, ''));
  return isNaN(number) ? text : number;
}
function sortTable(table, index){
  const header = table.tHead.rows[0].children[index];
  const ascending = !header.classList.contains('sorted-asc');
  for (const th of table.tHead.rows[0].children) th.classList.remove('sorted-asc', 'sorted-desc');
  header.classList.add(ascending ? 'sorted-asc' : 'sorted-desc');
  const rows = Array.from(table.tBodies[0].rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index), y = cellValue(b, index);
    const order = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  for (const row of rows) table.tBodies[0].appendChild(row);
}
// A plot drawn while the page was still loading took the width its cell had then: fit every plot to its cell.
window.addEventListener('load', () => document.querySelectorAll('.plot .plotly-graph-div').forEach(
  div => Plotly.Plots.resize(div)));
document.querySelectorAll('table.board').forEach(table => {
  Array.from(table.tHead.rows[0].children).forEach(
    (th, index) => th.addEventListener('click', () => sortTable(table, index)));
});
if (location.hash === '#selftest') {
  window.addEventListener('load', () => setTimeout(() => {
    const plots = Array.from(document.querySelectorAll('.plot')).map(plot => {
      const box = plot.getBoundingClientRect();
      return {id: plot.dataset.plot, x: box.left + scrollX, y: box.top + scrollY, width: box.width, height: box.height,
              svg: plot.querySelectorAll('svg.main-svg').length, traces: plot.querySelectorAll('.trace').length,
              drawn_width: plot.querySelector('svg.main-svg') ?
                plot.querySelector('svg.main-svg').getBoundingClientRect().width : 0};
    });
    const table = document.querySelector('table.board');
    let sort = null;
    if (table) {
      const index = Math.max(1, Array.from(table.tHead.rows[0].children).findIndex(
        th => th.textContent.startsWith('peak mem')));
      const values = () => Array.from(table.tBodies[0].rows).map(r => cellValue(r, index));
      const before = values();
      table.tHead.rows[0].children[index].click();
      const ascending = values();
      table.tHead.rows[0].children[index].click();
      sort = {column: index, before: before, ascending: ascending, descending: values()};
    }
    // What a reader sees of the first leaderboard at this width: where each header ends, then, scrolled to the far
    // right inside a narrowed wrapper, whether the method column stayed put.
    let board = null;
    if (table) {
      const wrap = table.closest('.board-wrap');
      const ends = {};
      for (const th of table.tHead.rows[0].children) ends[th.textContent] = th.getBoundingClientRect().right;
      wrap.style.maxWidth = '400px';
      wrap.scrollLeft = wrap.scrollWidth;
      const cell = table.tBodies[0].rows[0].children[0].getBoundingClientRect();
      board = {ends: ends, viewport: innerWidth, scrolled: wrap.scrollLeft,
               method_left: cell.left - wrap.getBoundingClientRect().left};
      wrap.scrollLeft = 0;
      wrap.style.maxWidth = '';
    }
    // Each plot's traces as drawn: name, colour, whether it has a legend entry.
    const traces = {};
    document.querySelectorAll('.plot .plotly-graph-div').forEach(div => {
      traces[div.id] = (div.data || []).map(t => [t.name, (t.line && t.line.color) || (t.marker && t.marker.color) ||
        null, t.showlegend !== false]);
    });
    const out = document.createElement('pre');
    out.id = 'selftest';
    out.textContent = JSON.stringify(
      {plots: plots, sort: sort, board: board, traces: traces, height: document.body.scrollHeight});
    document.body.appendChild(out);
  }, 500));
}
"""


def render_html(board: Leaderboard, rows: pl.DataFrame) -> str:
    go = import_plotly()
    from plotly.offline import get_plotlyjs

    sections = []
    board_rows, costs = display_rows(board), cost_rows(board)
    colours = method_colours(board)  # once for the whole report: a method keeps its colour in every plot
    for index, group in enumerate(groups(board)):
        plots = [
            _figure_html(tradeoff_figure(go, group, colours), f"tradeoff-{index}"),
            _figure_html(
                pareto_figure(go, group, "peak_mem_gib", "peak memory (GiB)", colours), f"pareto-memory-{index}"
            ),
            _figure_html(pareto_figure(go, group, "epoch_s", "epoch time (s)", colours), f"pareto-time-{index}"),
        ]
        if tpme_terms_of(group, board.weights):
            plots.append(_figure_html(tpme_figure(go, group, board.weights), f"tpme-{index}"))
        if memory_stack(group)[0]:
            plots.append(_figure_html(memory_figure(go, group), f"memory-{index}"))
        if learning_curves(group):
            plots.append(_figure_html(tta_figure(go, group, colours), f"tta-{index}"))
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
                f"<div><p class='caption'>{html.escape(context)}</p>{_figure_html(figure, f'scaling-{i}')}</div>"
                for i, (context, figure) in enumerate(scaling)
            )
            + "</div>"
        )
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
<h2>Failures</h2>{_failures_html(board)}
<h2>Provenance</h2>{_provenance_html(board, rows)}
<script>{SCRIPT}</script>
</body></html>
"""
