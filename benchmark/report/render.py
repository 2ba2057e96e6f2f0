"""Render a leaderboard as a terminal table, Markdown, CSV or JSON."""

from __future__ import annotations

import dataclasses
import io
import json
import textwrap
from dataclasses import dataclass

import polars as pl
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchmark.analysis.leaderboard import Leaderboard, caveats_present, group_baselines, small_groups
from benchmark.analysis.scaling import scaling_rows
from benchmark.report.columns import (
    BOARD_COLUMNS,
    BOARD_PRIORITY,
    COST_COLUMNS,
    COST_PRIORITY,
    IDENTITY,
    RAW_COLUMNS,
    SCALING_HEADERS,
    SCALING_NOTE,
    SCALING_TITLE,
    Column,
    cost_rows,
    display_rows,
    interval_note,
    scaling_display,
    weights_line,
)


def _notes(board: Leaderboard) -> list[str]:
    notes = [
        weights_line(board),
        interval_note(board),
        "runs: seeds x repeats; amortised epoch = epoch + cache build / epochs trained (at least one); "
        "memory sources: nvml = NVML process peak, torch = torch reserved peak, rss = CPU peak RSS (README: What "
        "each memory column contains)",
        COST_NOTE,
    ]
    for code, text in caveats_present(board).items():
        notes.append(f"caveat {code}: {text}")
    if scaling_rows(board.table):
        notes.append(SCALING_NOTE)
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
    "TTA: training time (evaluation excluded) until validation NDCG@10 first reached the row's fraction of its best; "
    "predicted/measured: what `mmbench estimate` predicted before the cell ran (peak: the process, NVML on a GPU, "
    "the resident set on a CPU) against what was measured, and the error"
)


def _grouped(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return groups


@dataclass(frozen=True)
class Choice:
    """Which columns a human-readable table shows: all (None, the default of Markdown; `--wide`), those fitted to a
    terminal's width (the default of the table), or those named with `--columns`."""

    names: list[str] | None = None
    width: int | None = None


def _terminal_text(header: str, value: str) -> str:
    """A list (a variant's keys, caveat codes) one item a line: the column is only as wide as its longest item."""
    return value.replace(", ", "\n") if header in ("variant", "caveats") else value


def _need(header: str, rows: list[dict[str, str]]) -> int:
    """Characters a column needs so that no value is broken: its widest line; the header wraps at its spaces."""
    values = [cell_len(line) for row in rows for line in _terminal_text(header, row[header]).split("\n")]
    return max([*values, *(cell_len(word) for word in header.split())])


def _table_width(needs: list[int]) -> int:
    """A rich table's width: one space of padding either side of each column, a border between and around."""
    return sum(need + 3 for need in needs) + 1


def _chosen(
    rows: list[dict[str, str]], catalogue: tuple[Column, ...], priority: tuple[str, ...], choice: Choice
) -> tuple[list[str], list[str]]:
    """(headers shown, names left out) of one kind of table."""
    present = [c for c in catalogue if rows and c.header in rows[0]]
    if choice.names is not None:
        order = {name: index for index, name in enumerate(choice.names)}
        picked = [c for c in present if c.name in IDENTITY] + sorted(
            (c for c in present if c.name in order and c.name not in IDENTITY), key=lambda c: order[c.name]
        )
        absent = [name for name in choice.names if name not in {c.name for c in present}]
        return [c.header for c in picked], absent
    if choice.width is None:
        return [c.header for c in present], []
    kept = {c.name for c in present if c.name in IDENTITY}
    used = _table_width([_need(c.header, rows) for c in present if c.name in kept])
    ranked = sorted(present, key=lambda c: priority.index(c.name) if c.name in priority else len(priority))
    for column in ranked:
        need = _need(column.header, rows) + 3
        if column.name not in kept and used + need <= choice.width:
            kept.add(column.name)
            used += need
    return [c.header for c in present if c.name in kept], [c.name for c in present if c.name not in kept]


def _rich_table(title: str, members: list[dict[str, str]], headers: list[str]) -> tuple[Table, int]:
    """The table and the width it needs so that no value is broken."""
    table = Table(title=title, title_justify="left")
    needs = [_need(header, members) for header in headers]
    for header, need in zip(headers, needs):
        # Fold, never truncate, where a terminal is narrower than even the identity columns: a cut-off value hides it.
        table.add_column(
            Text("\n".join(textwrap.wrap(header, width=need))),  # Text: '[tower/side/user/other]' is no markup
            justify="left" if header in ("method", "variant", "caveats") else "right",
            overflow="fold",
        )
    for row in members:
        table.add_row(*[Text(_terminal_text(header, row[header])) for header in headers])
    return table, _table_width(needs)


def render_table(board: Leaderboard, console: Console, choice: Choice | None = None) -> None:
    """The leaderboard and where its cost goes, per group. By default the columns that fit `console`'s width,
    most telling first (BOARD_PRIORITY); a table that must be wider (`--wide`, `--columns`, a very narrow terminal)
    is printed wider than the terminal rather than with broken values."""
    choice = choice or Choice(width=console.width)
    board_rows, all_costs = display_rows(board), cost_rows(board)
    headers, hidden = _chosen(board_rows, BOARD_COLUMNS, BOARD_PRIORITY, choice)
    cost_headers, cost_hidden = _chosen(all_costs, COST_COLUMNS, COST_PRIORITY, choice)
    show_board, show_costs = _tables(choice)
    costs = _grouped(all_costs)
    for group, members in _grouped(board_rows).items():
        if show_board:
            _print(console, *_rich_table(f"{group}  ({' / '.join(board.group_by)})", members, headers))
        if show_costs:
            _print(console, *_rich_table(f"{group}: {COST_TITLE}", costs[group], cost_headers))
    if show_board:
        for family, members in scaling_display(board).items():
            _print(console, *_rich_table(f"{family}: {SCALING_TITLE}", members, list(SCALING_HEADERS)))
    if not board_rows:
        console.print("no successful cells to rank")
    if choice.names is None and hidden + cost_hidden:
        line = f"columns left out to fit {choice.width} characters: {', '.join(hidden + cost_hidden)} (--wide shows "
        console.print(line + "every column; --columns NAME,... picks them)", markup=False, highlight=False)
    absent = [name for name in hidden if name in cost_hidden]  # named with --columns, in neither table
    if choice.names is not None and absent:
        console.print(f"no value in these rows: {', '.join(absent)}", markup=False, highlight=False)
    for note in _notes(board):
        console.print(note, markup=False, highlight=False)


def _print(console: Console, table: Table, width: int) -> None:
    """A table wider than the console on a console as wide as it (rich would fold its values to fit)."""
    if width > console.width:
        console = Console(file=console.file, width=width, force_terminal=console.is_terminal, soft_wrap=True)
    console.print(table)


def _tables(choice: Choice) -> tuple[bool, bool]:
    """Whether the leaderboard and the cost table are shown: both, unless --columns names columns of one only."""
    if choice.names is None:
        return True, True
    board_names = {c.name for c in BOARD_COLUMNS} - set(IDENTITY)
    cost_names = {c.name for c in COST_COLUMNS} - set(IDENTITY)
    picked = set(choice.names)
    return bool(picked & board_names) or not picked & cost_names, bool(picked & cost_names)


def _markdown_table(members: list[dict[str, str]], headers: list[str]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row[h] for h in headers) + " |" for row in members] + [""]


def render_markdown(board: Leaderboard, choice: Choice | None = None) -> str:
    """Every column (a file has no width), or those named with `--columns`."""
    choice = choice or Choice()
    board_rows, all_costs = display_rows(board), cost_rows(board)
    headers, _ = _chosen(board_rows, BOARD_COLUMNS, BOARD_PRIORITY, choice)
    cost_headers, _ = _chosen(all_costs, COST_COLUMNS, COST_PRIORITY, choice)
    show_board, show_costs = _tables(choice)
    lines = []
    costs = _grouped(all_costs)
    for group, members in _grouped(board_rows).items():
        if show_board:
            lines += [f"### {group}", "", *_markdown_table(members, headers)]
        if show_costs:
            lines += [f"#### {group}: {COST_TITLE}", "", *_markdown_table(costs[group], cost_headers)]
    if show_board:
        for family, members in scaling_display(board).items():
            lines += [f"#### {family}: {SCALING_TITLE}", "", *_markdown_table(members, list(SCALING_HEADERS))]
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
                "scaling": [dataclasses.asdict(row) for row in scaling_rows(board.table)],
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
