"""What the report's plots show, independent of the plotting library: per group of comparable work, the
trade-off points, the Pareto fronts, TPME's three terms; across groups, scaling series."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from benchmark.analysis.leaderboard import Leaderboard, group_baselines, group_label
from benchmark.analysis.tpme import Costs, tpme_terms

# The figures `--plot` can export, and what each shows.
PLOTS = {
    "tradeoff": "peak memory vs epoch time per method (marker size: trainable parameters)",
    "pareto-memory": "NDCG@10 vs peak memory, with the Pareto front and the popularity/random baselines",
    "pareto-time": "NDCG@10 vs epoch time, with the Pareto front and the popularity/random baselines",
    "tpme": "TPME per method, its three weighted terms stacked",
    "scaling": "epoch time, memory and NDCG@10 against tower size or number of modalities",
    "memory": "where memory goes per method: weights, gradients, optimizer state, activations, allocator slack, "
    "CUDA context (stacked)",
    "tta": "validation NDCG@10 against cumulative training time per method (time to accuracy)",
}
# The stacked parts of the memory plot, bottom to top. Activations: at the CUDA peak when measured there, else
# what autograd saved for backward in one step (a CPU has no allocator peak to take the static parts from).
MEMORY_PARTS = (
    ("weights_trainable_bytes", "trainable weights"),
    ("weights_frozen_bytes", "frozen weights"),
    ("gradient_bytes", "gradients"),
    ("optimizer_state_bytes", "optimizer state"),
    ("activations", "activations"),
    ("allocator_slack_bytes", "allocator slack"),
    ("cuda_context_bytes", "CUDA context"),
)


# One colour per method, the same in every panel and plot of a report (matplotlib's tab10, then tab20's lighter
# shades): taken in the order of the sorted method labels, so a method keeps its colour whatever a group holds.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def method_colours(board: Leaderboard) -> dict[str, str]:
    """Method label -> colour, built once per report from every method it shows (variants and repeats share it)."""
    if board.table.is_empty():
        return {}
    labels = sorted({str(label) for label in board.table["method_label"].to_list()})
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(labels)}


def colour_of(member: dict[str, Any], colours: dict[str, str]) -> str:
    return colours.get(str(member["method_label"]), PALETTE[0])


def needs_log_axis(values: list[float]) -> bool:
    """A log axis where the positive values span more than a factor of 20 (memory from 0.9 to 34 GiB, say)."""
    positive = [v for v in values if v and v > 0]
    return bool(positive) and max(positive) / min(positive) > 20


def marker_scale(member: dict[str, Any], members: list[dict[str, Any]]) -> float:
    """0..1: a trade-off marker's size, by the square root of its trainable parameters (area ~ parameters)."""
    largest = max((m["trainable_params"] or 1 for m in members), default=1)
    return float(((member["trainable_params"] or 0) / largest) ** 0.5)


@dataclass(frozen=True)
class Group:
    label: str
    caption: str  # what the plots of this group compare: hardware, precision, batch size, suites
    members: list[dict[str, Any]]  # leaderboard rows, one per configuration
    baselines: dict[str, float | None]


def _suites(members: list[dict[str, Any]]) -> str:
    names = sorted({json.loads(m["config_json"]).get("suite", "?") for m in members})
    return ", ".join(names)


def caption(members: list[dict[str, Any]]) -> str:
    first = members[0]
    return (
        f"{first['hardware']} · {first['precision']} · batch {first['batch_size']} · "
        f"{first['max_seq_len']} items · suite {_suites(members)}"
    )


def groups(board: Leaderboard) -> list[Group]:
    baselines = group_baselines(board)
    found = []
    for _, group in board.table.group_by(board.group_by, maintain_order=True):
        members = group.to_dicts()
        label = group_label(members[0], board.group_by)
        found.append(Group(label, caption(members), members, baselines.get(label, {})))
    return found


def method_name(member: dict[str, Any]) -> str:
    return str(member["method_label"]) + (f" [{member['variant']}]" if member.get("variant") else "")


def pareto_front(points: list[tuple[float, float, str]]) -> list[str]:
    """Labels of the points no other point beats on both axes (lower x, higher y), in x order."""
    front, best_y = [], float("-inf")
    for _, y, label in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best_y:
            front.append(label)
            best_y = y
    return front


def accuracy_points(group: Group, cost: str) -> list[tuple[float, float, str]]:
    return [(float(m[cost]), float(m["test_ndcg@10"]), method_name(m)) for m in accuracy_members(group, cost)]


def accuracy_members(group: Group, cost: str) -> list[dict[str, Any]]:
    """The members a Pareto plot shows (in `accuracy_points` order)."""
    return [m for m in group.members if m.get(cost) is not None and m.get("test_ndcg@10") is not None]


@dataclass(frozen=True)
class Canvas:
    """A plot's drawing area and text, in one unit (pixels for the HTML report, typographic points for a figure),
    to place labels before the plotting library draws them."""

    width: float
    height: float
    char_width: float
    line_height: float
    gap: float  # from a point to its label: the marker's radius and a little


def to_canvas(values: list[float], log: bool, length: float, also: list[float] | None = None) -> list[float]:
    """Where `values` fall along an axis of `length` scaled to them (and to `also`, other things on that axis), with
    the 5% margins plotting libraries add."""

    def scaled(value: float) -> float:
        return math.log10(value) if log and value > 0 else value

    span_of = [scaled(v) for v in [*values, *(also or [])]]
    low, high = min(span_of, default=0.0), max(span_of, default=1.0)
    span = high - low
    if span <= 0:
        return [length / 2 for _ in values]
    return [length * (0.05 + 0.9 * (scaled(v) - low) / span) for v in values]


Box = tuple[float, float, float, float]  # left, bottom, right, top


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _outside(box: Box, bounds: Box | None) -> float:
    """How much of `box` lies outside `bounds` (a label over the title or off the plot)."""
    return 0.0 if bounds is None else (box[2] - box[0]) * (box[3] - box[1]) - _overlap(box, bounds)


def _box(anchor: tuple[float, float], offset: tuple[float, float], size: tuple[float, float]) -> Box:
    x, y = anchor[0] + offset[0], anchor[1] + offset[1]
    return (x - size[0] / 2, y - size[1] / 2, x + size[0] / 2, y + size[1] / 2)


def place_labels(
    anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], gap: float, bounds: Box | None = None
) -> list[tuple[float, float]]:
    """Per anchor (a point, y up), the offset of its label's centre: the first of the positions around the point
    (above, below, right, left, the diagonals, then further above and below) whose box overlaps no label placed
    before and no other point and stays inside `bounds`; when none is free, the one that overlaps least. Two methods
    at nearly the same cost and accuracy (lora, lora-r4) once printed their names on top of each other."""
    markers = [(x - gap, y - gap, x + gap, y + gap) for x, y in anchors]
    placed: list[Box] = []
    offsets = []
    for index, (anchor, (width, height)) in enumerate(zip(anchors, sizes)):
        across, up = gap + width / 2, gap + height / 2
        candidates = [(0.0, up), (0.0, -up), (across, 0.0), (-across, 0.0)]
        candidates += [(across, up), (-across, up), (across, -up), (-across, -up)]
        candidates += [(0.0, sign * (up + step * height)) for step in range(1, 6) for sign in (1, -1)]
        obstacles = placed + [box for other, box in enumerate(markers) if other != index]
        boxes = [_box(anchor, c, (width, height)) for c in candidates]
        crowding = [sum(_overlap(box, o) for o in obstacles) + _outside(box, bounds) for box in boxes]
        best = candidates[crowding.index(min(crowding))]  # the first of equals: above, when it is free
        offsets.append(best)
        placed.append(_box(anchor, best, (width, height)))
    return offsets


def label_offsets(
    xs: list[float], ys: list[float], names: list[str], log: tuple[bool, bool], canvas: Canvas, y_also: list[float]
) -> list[tuple[float, float]]:
    """`place_labels` for points in data units on `canvas` (log: whether the x and y axes are logarithmic; y_also:
    other values on the y axis, e.g. baselines, that stretch it)."""
    anchors = list(zip(to_canvas(xs, log[0], canvas.width), to_canvas(ys, log[1], canvas.height, y_also)))
    sizes = [(canvas.char_width * len(name), canvas.line_height) for name in names]
    return place_labels(anchors, sizes, canvas.gap, (0.0, 0.0, canvas.width, canvas.height))


def baseline_sides(baselines: dict[str, float | None]) -> dict[str, str]:
    """'above' or 'below' the line, per baseline: the higher one's label above its line and the lower one's below,
    so two close baselines ('popularity 0.048', 'random 0.041') never print their labels on each other."""
    present = {key: value for key, value in baselines.items() if value is not None}
    highest = max(present, key=lambda key: present[key], default=None)
    return {key: "above" if key == highest else "below" for key in present}


def tpme_bars(group: Group, weights: tuple[float, float, float]) -> list[tuple[str, float, float, float]]:
    """(method, time term, parameter term, memory term) for the members TPME scores (same memory source)."""
    scored = [m for m in group.members if m.get("tpme") is not None]
    costs = [Costs(m["epoch_s"], m["trainable_params"], m["peak_mem_gib"]) for m in scored]
    return [(method_name(m), *terms) for m, terms in zip(scored, tpme_terms(costs, weights))]


def _activations(member: dict[str, Any]) -> tuple[float | None, str]:
    if member.get("activation_peak_bytes") is not None:
        return member["activation_peak_bytes"], "at peak"
    return member.get("activation_saved_bytes"), "saved for backward"


def memory_stack(group: Group) -> tuple[list[tuple[str, dict[str, float]]], str]:
    """(method, MiB per memory part) for the members with a breakdown, and what 'activations' means here."""
    stacks, kinds = [], set()
    for member in group.members:
        if member.get("weights_trainable_bytes") is None:
            continue
        activations, kind = _activations(member)
        kinds.add(kind)
        parts = {key: (activations if key == "activations" else member.get(key)) for key, _ in MEMORY_PARTS}
        stacks.append((method_name(member), {key: (value or 0) / 2**20 for key, value in parts.items()}))
    return stacks, " and ".join(sorted(kinds))


@dataclass(frozen=True)
class Curve:
    member: dict[str, Any]  # the configuration (leaderboard row) the run belongs to
    times: list[float]  # training seconds
    scores: list[float]  # validation NDCG@10


def learning_curves(group: Group) -> list[Curve]:
    """Every run's validation curve; the runs of one configuration (seeds, repeats) share its member."""
    curves = []
    for member in group.members:
        for times, scores in zip(
            member.get("valid_train_s_curves") or [], member.get("valid_ndcg10_curves") or [], strict=True
        ):
            if times:
                curves.append(Curve(member, list(times), list(scores)))
    return curves


def dash_index(member: dict[str, Any], members: list[dict[str, Any]]) -> int:
    """Which line style a configuration takes among those of its method (its colour): 0 for the first variant."""
    variants = sorted({str(m.get("variant") or "") for m in members if m["method_label"] == member["method_label"]})
    return variants.index(str(member.get("variant") or ""))


@dataclass(frozen=True)
class ScalingSeries:
    method: str
    context: str  # hardware · precision · batch
    axis: str  # what x is
    points: list[dict[str, Any]]  # x, towers, epoch_s, peak_mem_gib, test_ndcg@10


def _modalities(member: dict[str, Any]) -> int:
    towers = json.loads(member["config_json"])["towers"]
    return sum(1 for key, value in towers.items() if key != "name" and value)


def scaling_series(board: Leaderboard) -> list[ScalingSeries]:
    """Per method and setting, its rows over several tower sets: against the number of modalities when that
    varies, else against the towers' total parameters."""
    by_method: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for member in board.table.to_dicts():
        key = (member["method_label"], member["hardware"], member["precision"], member["batch_size"])
        by_method.setdefault(key, []).append(member)
    series = []
    for (method, hardware, precision, batch), members in by_method.items():
        if len({m["towers"] for m in members}) < 2:
            continue
        by_modalities = len({_modalities(m) for m in members}) > 1
        axis = "modalities" if by_modalities else "total parameters (M)"
        points = [
            {
                "x": _modalities(m) if by_modalities else m["total_params"] / 1e6,
                "towers": m["towers"],
                "epoch_s": m["epoch_s"],
                "peak_mem_gib": m["peak_mem_gib"],
                "test_ndcg@10": m.get("test_ndcg@10"),
            }
            for m in members
        ]
        points.sort(key=lambda p: p["x"])
        series.append(ScalingSeries(str(method), f"{hardware} · {precision} · batch {batch}", axis, points))
    return series
