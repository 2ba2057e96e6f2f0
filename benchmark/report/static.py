"""`mmbench report --format png|svg --plot NAME -o FILE`: one figure for a paper, drawn with matplotlib
(no browser): single-column width (3.5 in), 8-pt fonts, 300 dpi for PNG; one panel per group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import MMBenchError
from benchmark.report import figures
from benchmark.results.leaderboard import Leaderboard

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


def _tradeoff(axis: Any, group: figures.Group) -> None:
    members = [m for m in group.members if m.get("epoch_s") is not None and m.get("peak_mem_gib") is not None]
    for member in members:
        size = 20 + 180 * figures.marker_scale(member, members)
        axis.scatter(member["epoch_s"], member["peak_mem_gib"], s=size, alpha=0.7)
        axis.annotate(figures.method_name(member), (member["epoch_s"], member["peak_mem_gib"]), fontsize=6)
    axis.set_xlabel("epoch time (s)")
    axis.set_ylabel("peak memory (GiB)")
    _scale(axis, [m["epoch_s"] for m in members], "x")
    _scale(axis, [m["peak_mem_gib"] for m in members], "y")


def _pareto(axis: Any, group: figures.Group, cost: str, label: str) -> None:
    points = figures.accuracy_points(group, cost)
    front = figures.pareto_front(points)
    axis.scatter([p[0] for p in points], [p[1] for p in points], s=18)
    for x, y, name in points:
        axis.annotate(name, (x, y), fontsize=6)
    on_front = [p for p in sorted(points) if p[2] in front]
    axis.plot([p[0] for p in on_front], [p[1] for p in on_front], linestyle=":", color="black", linewidth=0.8)
    for key, name in (("pop_test_ndcg@10", "popularity"), ("random_test_ndcg@10", "random")):
        if group.baselines.get(key) is not None:
            axis.axhline(group.baselines[key], linestyle="--", linewidth=0.7, color="grey")
            axis.annotate(name, (axis.get_xlim()[0], group.baselines[key]), fontsize=6, color="grey")
    axis.set_xlabel(label)
    axis.set_ylabel("test NDCG@10")
    _scale(axis, [p[0] for p in points], "x")


def _tpme(axis: Any, group: figures.Group, weights: tuple[float, float, float]) -> None:
    bars = figures.tpme_bars(group, weights)
    bottom = [0.0] * len(bars)
    for index, name in enumerate(("time", "parameters", "memory")):
        heights = [b[index + 1] for b in bars]
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


def _tta(axis: Any, group: figures.Group) -> None:
    colours: dict[str, Any] = {}
    for method, times, scores in figures.learning_curves(group):
        line = axis.plot(times, scores, marker="o", markersize=2, color=colours.get(method))[0]
        if method not in colours:
            colours[method] = line.get_color()
            line.set_label(method)
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
    if plot == "scaling":
        series = figures.scaling_series(board)
        if not series:
            raise MMBenchError("--plot scaling: no method ran on several tower sets in these rows")
        figure, axes = plt.subplots(
            len(series), 3, figsize=(WIDTH_IN * 2, PANEL_HEIGHT_IN * len(series)), squeeze=False
        )
        for row, one in enumerate(series):
            for column, key in enumerate(("epoch_s", "peak_mem_gib", "test_ndcg@10")):
                axes[row][column].plot([p["x"] for p in one.points], [p[key] for p in one.points], marker="o")
                axes[row][column].set_xlabel(one.axis)
                axes[row][column].set_title(f"{one.method}: {key}")
    else:
        found = [g for g in figures.groups(board) if _HAS.get(plot, lambda group, board: True)(g, board)]
        if not found:
            raise MMBenchError(f"--plot {plot}: no group of these rows has what this plot shows")
        figure, axes = plt.subplots(len(found), 1, figsize=(WIDTH_IN, PANEL_HEIGHT_IN * len(found)), squeeze=False)
        for axis, group in zip([a[0] for a in axes], found):
            if plot == "tradeoff":
                _tradeoff(axis, group)
            elif plot == "pareto-memory":
                _pareto(axis, group, "peak_mem_gib", "peak memory (GiB)")
            elif plot == "pareto-time":
                _pareto(axis, group, "epoch_s", "epoch time (s)")
            elif plot == "memory":
                _memory(axis, group)
            elif plot == "tta":
                _tta(axis, group)
            else:
                _tpme(axis, group, board.weights)
            axis.set_title(group.caption, fontsize=6)
    figure.tight_layout()
    figure.savefig(output, format=image_format, dpi=DPI)
    plt.close(figure)
    return output
