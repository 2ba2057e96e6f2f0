"""The HTML report's plotly figures: trade-off, Pareto fronts, TPME terms, memory, learning curves and scaling."""

from __future__ import annotations

import html
import math
from typing import Any

from benchmark.analysis.leaderboard import Leaderboard
from benchmark.errors import MMBenchError
from benchmark.report.figures import (
    MEMORY_PARTS,
    Canvas,
    Group,
    accuracy_members,
    accuracy_points,
    baseline_sides,
    colour_of,
    dash_index,
    label_offsets,
    learning_curves,
    marker_scale,
    memory_stack,
    method_name,
    needs_log_axis,
    pareto_front,
    scaling_series,
)
from benchmark.report.figures import tpme_bars as tpme_terms_of

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


def figure_html(figure: Any, plot_id: str) -> str:
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
