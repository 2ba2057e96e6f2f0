"""What the report's plots show, independent of the plotting library: per group of comparable work, the
trade-off points, the Pareto fronts, TPME's three terms; across groups, scaling series."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchmark.results.leaderboard import Leaderboard, group_baselines, group_label
from benchmark.results.tpme import Costs, tpme_terms

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
    return [
        (float(m[cost]), float(m["test_ndcg@10"]), method_name(m))
        for m in group.members
        if m.get(cost) is not None and m.get("test_ndcg@10") is not None
    ]


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


def learning_curves(group: Group) -> list[tuple[str, list[float], list[float]]]:
    """(method, training seconds, validation NDCG@10) for every run with a validation curve."""
    curves = []
    for member in group.members:
        for times, scores in zip(
            member.get("valid_train_s_curves") or [], member.get("valid_ndcg10_curves") or [], strict=True
        ):
            if times:
                curves.append((method_name(member), list(times), list(scores)))
    return curves


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
