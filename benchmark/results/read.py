"""Read every result row under a directory with polars; corrupt files are skipped and named."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.errors import ResultsError
from benchmark.results.schema import COLUMNS, RESULT_SCHEMA
from benchmark.results.store import result_files


def read_results(results_dir: Path) -> tuple[pl.DataFrame, list[str]]:
    """(rows, warnings) of a results directory, a run directory or one Parquet file. A file that is not a
    readable result row is reported in warnings, not fatal."""
    if not results_dir.exists():
        raise ResultsError(
            f"results directory {results_dir} does not exist (run `mmbench run SUITE --results {results_dir}` first)"
        )
    files = [results_dir] if results_dir.is_file() else result_files(results_dir)
    frames, warnings = [], []
    for path in files:
        try:
            table = pq.read_table(path)
        except Exception as error:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            warnings.append(f"skipped {path}: not a readable Parquet file ({type(error).__name__}: {error})")
            continue
        missing = [name for name in ("cell_id", "status", "schema_version") if name not in table.column_names]
        if missing:
            warnings.append(f"skipped {path}: not an mmbench result (missing {', '.join(missing)})")
            continue
        # Older or newer rows: align to the current schema so one frame holds them all.
        for field in RESULT_SCHEMA:
            if field.name not in table.column_names:
                table = table.append_column(field.name, pa.nulls(table.num_rows, type=field.type))
        table = table.select(COLUMNS).cast(RESULT_SCHEMA)
        frame = pl.DataFrame(pl.from_arrow(table))
        frames.append(frame.with_columns(pl.lit(str(path)).alias("file")))
    if not frames:
        empty = pl.DataFrame(pl.from_arrow(RESULT_SCHEMA.empty_table()))
        return pl.DataFrame(schema={**empty.schema, "file": pl.String}), warnings
    return pl.concat(frames, how="vertical_relaxed"), warnings
