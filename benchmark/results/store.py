"""The results store: one Parquet file per cell, written to a temporary name and renamed into place."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmark.atomic import atomic_file
from benchmark.errors import ResultsError
from benchmark.results.schema import row_to_table


def cell_file_name(cell_id: str) -> str:
    return cell_id.replace("/", "__") + ".parquet"


def ensure_writable(results_dir: Path) -> None:
    """Fail before any cell runs if the results directory cannot take files."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=results_dir, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ResultsError(f"results directory {results_dir} is not writable: {error.strerror or error}") from error


def write_row(path: Path, row: dict[str, Any]) -> Path:
    """Atomically write one row: readers see either no file or the whole file."""
    table = row_to_table(row)
    with atomic_file(path) as temporary:
        pq.write_table(table, temporary)
    return path


def read_row(path: Path) -> dict[str, Any]:
    """The one row of a cell's file (as `write_row` wrote it)."""
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows[0]


def result_files(results_dir: Path) -> list[Path]:
    return sorted(path for path in results_dir.rglob("*.parquet") if not path.name.startswith("."))
