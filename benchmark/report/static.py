"""`mmbench report --format png|svg --plot NAME -o FILE`: one figure for a paper, drawn with matplotlib
(no browser): single-column width (3.5 in), 8-pt fonts, 300 dpi for PNG; one panel per group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.analysis.leaderboard import Leaderboard
from benchmark.errors import MMBenchError
from benchmark.report import figures

WIDTH_IN, PANEL_HEIGHT_IN, DPI = 3.5, 2.6, 300


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise MMBenchError("--format png/svg needs matplotlib: pip install 'mmbench[report]'") from error
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7})
    return plt


def _scale(axis: Any, values: list[float], which: str) -> None:
    if figures.needs_log_axis(values):
        getattr(axis, f"set_{which}scale")("log")


# The axes of one panel, in points (a 3.5 x 2.6 in panel less its tick labels), and its 6-pt labels.
CANVAS = figures.Canvas(width=200, height=140, char_width=3.4, line_height=7.5, gap=4)


def _labels(axis: Any, points: list[tuple[float, float, str, str]], log: tuple[bool, bool], gap: float) -> None:
    """Each point's name (x, y, name, colour), placed by `figures.label_offsets` so that no two overlap; a label
    pushed further away than the positions next to its point gets a leader line."""
    canvas = figures.Canvas(CANVAS.width, CANVAS.height, CANVAS.char_width, CANVAS.line_height, gap)
    xs, ys, names = [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
    low, high = axis.get_ylim()  # baselines drawn before stretch the y axis
    offsets = figures.label_offsets(xs, ys, names, log, canvas, [low, high])
    for (x, y, name, colour), (dx, dy) in zip(points, offsets):
        width = canvas.char_width * len(name)
        leader = abs(dx) > gap + width / 2 + 1 or abs(dy) > gap + canvas.line_height / 2 + 1
        axis.annotate(
            name,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=6,
            color=colour,
            arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": "grey"} if leader else None,
        )


def _tradeoff(axis: Any, group: figures.Group, colours: dict[str, str]) -> None:
    members = [m for m in group.members if m.get("epoch_s") is not None and m.get("peak_mem_gib") is not None]
    sizes = [20 + 180 * figures.marker_scale(member, members) for member in members]
    for member, size in zip(members, sizes):
        axis.scatter(
            member["epoch_s"], member["peak_mem_gib"], s=size, alpha=0.7, color=figures.colour_of(member, colours)
        )
    axis.set_xlabel("epoch time (s)")
    axis.set_ylabel("peak memory (GiB)")
    _scale(axis, [m["epoch_s"] for m in members], "x")
    _scale(axis, [m["peak_mem_gib"] for m in members], "y")
    log = (axis.get_xscale() == "log", axis.get_yscale() == "log")
    points = [(m["epoch_s"], m["peak_mem_gib"], figures.method_name(m), figures.colour_of(m, colours)) for m in members]
    _labels(axis, points, log, (max(sizes, default=20) ** 0.5) / 2 + 2)  # s is the marker's area in points²


def _pareto(axis: Any, group: figures.Group, cost: str, label: str, colours: dict[str, str]) -> None:
    points = figures.accuracy_points(group, cost)
    members = figures.accuracy_members(group, cost)
    front = figures.pareto_front(points)
    member_colours = [figures.colour_of(m, colours) for m in members]
    axis.scatter([p[0] for p in points], [p[1] for p in points], s=18, color=member_colours)
    on_front = [p for p in sorted(points) if p[2] in front]
    axis.plot([p[0] for p in on_front], [p[1] for p in on_front], linestyle=":", color="black", linewidth=0.8)
    sides = figures.baseline_sides(
        {key: group.baselines.get(key) for key in ("pop_test_ndcg@10", "random_test_ndcg@10")}
    )
    for key, name in (("pop_test_ndcg@10", "popularity"), ("random_test_ndcg@10", "random")):
        if group.baselines.get(key) is not None:
            value = group.baselines[key]
            axis.axhline(value, linestyle="--", linewidth=0.7, color="grey")
            above = sides[key] == "above"
            axis.annotate(
                f"{name} {value:.3f}",
                (1.0, value),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 1 if above else -1),
                textcoords="offset points",
                ha="right",
                va="bottom" if above else "top",
                fontsize=6,
                color="grey",
            )
    axis.set_xlabel(label)
    axis.set_ylabel("test NDCG@10")
    _scale(axis, [p[0] for p in points], "x")
    log = (axis.get_xscale() == "log", False)
    _labels(axis, [(p[0], p[1], p[2], colour) for p, colour in zip(points, member_colours)], log, 4)


def _tpme(axis: Any, group: figures.Group, weights: tuple[float, float, float]) -> None:
    bars = figures.tpme_bars(group, weights)
    bottom = [0.0] * len(bars)
    for index, name in enumerate(("time", "parameters", "memory")):
        heights = [b[1:][index] for b in bars]  # the three terms after the method's name
        axis.bar([b[0] for b in bars], heights, bottom=bottom, label=name)
        bottom = [low + height for low, height in zip(bottom, heights)]
    axis.set_ylabel("TPME")
    axis.tick_params(axis="x", rotation=45)
    axis.legend()


def _memory(axis: Any, group: figures.Group) -> None:
    stacks, activations = figures.memory_stack(group)
    bottom = [0.0] * len(stacks)
    for key, label in figures.MEMORY_PARTS:
        heights = [parts[key] for _, parts in stacks]
        if any(heights):
            name = f"activations ({activations})" if key == "activations" else label
            axis.bar([method for method, _ in stacks], heights, bottom=bottom, label=name)
            bottom = [low + height for low, height in zip(bottom, heights)]
    axis.set_ylabel("MiB")
    axis.tick_params(axis="x", rotation=45)
    axis.legend()


LINE_STYLES = ("-", "--", ":", "-.") * 6


def _tta(axis: Any, group: figures.Group, colours: dict[str, str]) -> None:
    """One line per run in its method's colour; one legend entry per configuration (its runs share it)."""
    shown: set[str] = set()
    for curve in figures.learning_curves(group):
        name = figures.method_name(curve.member)
        axis.plot(
            curve.times,
            curve.scores,
            marker="o",
            markersize=2,
            color=figures.colour_of(curve.member, colours),
            linestyle=LINE_STYLES[figures.dash_index(curve.member, group.members)],
            label=name if name not in shown else "_nolegend_",
        )
        shown.add(name)
    axis.set_xlabel("training time, evaluation excluded (s)")
    axis.set_ylabel("validation NDCG@10")
    axis.legend()


# What a group needs to have for each per-group plot (a group without it is left out of the figure).
_HAS = {
    "tpme": lambda group, board: bool(figures.tpme_bars(group, board.weights)),
    "memory": lambda group, board: bool(figures.memory_stack(group)[0]),
    "tta": lambda group, board: bool(figures.learning_curves(group)),
}


def write_figure(board: Leaderboard, plot: str, output: Path, image_format: str) -> Path:
    if plot not in figures.PLOTS:
        raise MMBenchError(f"--plot: unknown plot '{plot}' (one of {', '.join(figures.PLOTS)})")
    plt = _pyplot()
    colours = figures.method_colours(board)  # once for the whole figure: a method keeps its colour in every panel
    if plot == "scaling":
        series = figures.scaling_series(board)
        if not series:
            raise MMBenchError("--plot scaling: no method ran on several tower sets in these rows")
        figure, axes = plt.subplots(
            len(series), 3, figsize=(WIDTH_IN * 2, PANEL_HEIGHT_IN * len(series)), squeeze=False
        )
        for row, one in enumerate(series):
            for column, key in enumerate(("epoch_s", "peak_mem_gib", "test_ndcg@10")):
                axes[row][column].plot(
                    [p["x"] for p in one.points],
                    [p[key] for p in one.points],
                    marker="o",
                    color=colours.get(one.method),
                )
                axes[row][column].set_xlabel(one.axis)
                axes[row][column].set_title(f"{one.method}: {key}")
    else:
        found = [g for g in figures.groups(board) if _HAS.get(plot, lambda group, board: True)(g, board)]
        if not found:
            raise MMBenchError(f"--plot {plot}: no group of these rows has what this plot shows")
        figure, axes = plt.subplots(len(found), 1, figsize=(WIDTH_IN, PANEL_HEIGHT_IN * len(found)), squeeze=False)
        for axis, group in zip([a[0] for a in axes], found):
            if plot == "tradeoff":
                _tradeoff(axis, group, colours)
            elif plot == "pareto-memory":
                _pareto(axis, group, "peak_mem_gib", "peak memory (GiB)", colours)
            elif plot == "pareto-time":
                _pareto(axis, group, "epoch_s", "epoch time (s)", colours)
            elif plot == "memory":
                _memory(axis, group)
            elif plot == "tta":
                _tta(axis, group, colours)
            else:
                _tpme(axis, group, board.weights)
            axis.set_title(group.caption, fontsize=6)
    figure.tight_layout()
    figure.savefig(output, format=image_format, dpi=DPI)
    plt.close(figure)
    return output
