"""Ranking stored rows: the leaderboard `mmbench report` prints, as a value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from benchmark.analysis.leaderboard import Leaderboard, build_leaderboard
from benchmark.analysis.tpme import parse_weights
from benchmark.api.notify import Notify
from benchmark.errors import MMBenchError
from benchmark.results.compacted_file import COMPACTED_NAME
from benchmark.results.read import RowFilter, read_results

# Reading costs about 0.5 ms a file whatever its size: past this many per-cell files, compaction is worth saying.
MANY_CELL_FILES = 2000


@dataclass(frozen=True)
class BoardRequest:
    """What `mmbench report` ranks: which rows, grouped how, scored with which TPME weights."""

    results: Path = Path("results")
    suite: str | None = None
    run_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    group_by: tuple[str, ...] | None = None  # None: the default groups of comparable work
    weights: str = "0.45,0.1,0.45"
    all_runs: bool = False
    sort: str = "tpme"


def leaderboard(request: BoardRequest, notify: Notify) -> tuple[Leaderboard, pl.DataFrame]:
    """The leaderboard of the rows `request` selects, with the rows; no rows at all is an error naming the filter."""
    weights = parse_weights(request.weights)
    rows, warnings = read_results(request.results, RowFilter(request.suite, request.run_ids, request.statuses))
    for warning in warnings:
        notify(f"warning: {warning}")
    files = rows["file"].unique()
    per_cell = int((~files.str.ends_with(f"/{COMPACTED_NAME}")).sum())
    if per_cell > MANY_CELL_FILES:
        notify(
            f"note: read {per_cell} per-cell result files; `mmbench results compact --results {request.results}` "
            "merges each finished run into one file, which reads many times faster"
        )
    if rows.is_empty():
        wanted = [
            f"suite '{request.suite}'" if request.suite else "",
            f"run {', '.join(request.run_ids)}" if request.run_ids else "",
            f"status {', '.join(request.statuses)}" if request.statuses else "",
        ]
        described = ", ".join(w for w in wanted if w)
        raise MMBenchError(f"no result rows under {request.results}" + (f" for {described}" if described else ""))
    group_by = list(request.group_by) if request.group_by is not None else None
    return build_leaderboard(rows, group_by, weights, request.all_runs, request.sort), rows
