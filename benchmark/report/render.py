"""Render a leaderboard as a terminal table, Markdown, CSV or JSON."""

from __future__ import annotations

import io
import json

import polars as pl
from rich.console import Console
from rich.table import Table

from benchmark.report.columns import RAW_COLUMNS, cost_rows, display_rows, weights_line
from benchmark.results.leaderboard import Leaderboard, caveats_present, group_baselines, small_groups


def _notes(board: Leaderboard) -> list[str]:
    notes = [
        weights_line(board),
        f"[95%]: {board.interval}; a configuration with one run has no interval",
        "runs: seeds x repeats; amortised epoch = epoch + cache build / epochs trained (at least one); "
        "memory sources: nvml = NVML process peak, torch = torch reserved peak, rss = CPU peak RSS (README: What "
        "each memory column contains)",
        COST_NOTE,
    ]
    for code, text in caveats_present(board).items():
        notes.append(f"caveat {code}: {text}")
    for group, values in group_baselines(board).items():
        notes.append(
            f"baselines on '{group}' (same evaluator): popularity HR@10 {values['pop_test_hr@10']:.4f} "
            f"NDCG@10 {values['pop_test_ndcg@10']:.4f}; random HR@10 {values['random_test_hr@10']:.4f} "
            f"NDCG@10 {values['random_test_ndcg@10']:.4f}"
        )
    for group in small_groups(board):
        notes.append(f"warning: fewer than 3 methods in group '{group}': TPME's min-max scaling says little there")
    for row in board.failures.iter_rows(named=True):
        first_line = (row["error"] or "").splitlines()[0] if row["error"] else ""
        notes.append(f"{row['status']}: {row['cell_id']}: {first_line}")
    return notes


COST_TITLE = "where the cost goes"
COST_NOTE = (
    "where the cost goes: weights, gradients and optimizer state counted from the tensors after the first step; "
    "saved activations: what autograd kept for backward in one step (parameters excluded); at peak (CUDA): peak "
    "allocated minus weights, gradients and optimizer state; slack: reserved minus allocated; CUDA context: NVML "
    "process minus reserved. GFLOP/step counted on one forward + backward of the first batch; TFLOP/s = FLOPs of "
    "the median step / its time; MFU against the GPU's dense peak for the precision (README: Where the cost goes); "
    "kernels/step (syncs): operators launching device work in one step, and host-device synchronisations among "
    "them, counted on the last warm-up step; "
    "TTA: training time (evaluation excluded) until validation NDCG@10 first reached the row's fraction of its best"
)


def _grouped(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return groups


def _rich_table(title: str, members: list[dict[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in members[0]:
        if column != "group":
            # Fold, never truncate: a cut-off interval would hide a number.
            table.add_column(
                column, justify="left" if column in ("method", "variant", "caveats") else "right", overflow="fold"
            )
    for row in members:
        table.add_row(*[value for key, value in row.items() if key != "group"])
    return table


def render_table(board: Leaderboard, console: Console) -> None:
    groups = _grouped(display_rows(board))
    costs = _grouped(cost_rows(board))
    for group, members in groups.items():
        console.print(_rich_table(f"{group}  ({' / '.join(board.group_by)})", members))
        console.print(_rich_table(f"{group}: {COST_TITLE}", costs[group]))
    if not groups:
        console.print("no successful cells to rank")
    for note in _notes(board):
        console.print(note, markup=False, highlight=False)


def _markdown_table(members: list[dict[str, str]]) -> list[str]:
    headers = [key for key in members[0] if key != "group"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row[h] for h in headers) + " |" for row in members] + [""]


def render_markdown(board: Leaderboard) -> str:
    lines = []
    costs = _grouped(cost_rows(board))
    for group, members in _grouped(display_rows(board)).items():
        lines += [f"### {group}", "", *_markdown_table(members)]
        lines += [f"#### {group}: {COST_TITLE}", "", *_markdown_table(costs[group])]
    lines += [f"- {note}" for note in _notes(board)]
    return "\n".join(lines) + "\n"


def _raw(board: Leaderboard) -> pl.DataFrame:
    rest = [c for c in RAW_COLUMNS if c in board.table.columns and c not in board.group_by]
    return board.table.select(board.group_by + rest)


def render_csv(board: Leaderboard) -> str:
    """Leaderboard rows (status ok), then one row per failed cell with its status and error."""
    buffer = io.StringIO()
    flat = _raw(board).with_columns(
        [pl.col(c).list.join(";") for c in ("caveats", "cache_origins") if c in board.table.columns]
    )
    flat = flat.with_columns(
        pl.lit("ok").alias("status"), pl.lit(None, pl.String).alias("error"), pl.lit(None, pl.String).alias("cell_id")
    )
    failed = board.failures.select([c for c in board.failures.columns if c in flat.columns])
    pl.concat([flat, failed], how="diagonal_relaxed").write_csv(buffer)
    return buffer.getvalue()


def render_json(board: Leaderboard) -> str:
    return (
        json.dumps(
            {
                "weights": {"time": board.weights[0], "params": board.weights[1], "memory": board.weights[2]},
                "group_by": board.group_by,
                "sort": board.sort,
                "interval": board.interval,
                "caveats": caveats_present(board),
                "rows": _raw(board).to_dicts(),
                "small_groups": small_groups(board),
                "baselines": group_baselines(board),
                "failures": board.failures.to_dicts(),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
