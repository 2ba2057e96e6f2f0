"""The results store: one Parquet file per cell, written to a temporary name and renamed into place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmark.errors import ResultsError
from benchmark.permissions import honour_umask
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
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        pq.write_table(table, temporary)
        honour_umask(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def result_files(results_dir: Path) -> list[Path]:
    return sorted(path for path in results_dir.rglob("*.parquet") if not path.name.startswith("."))
