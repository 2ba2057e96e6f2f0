"""Read every result row under a directory with polars' multi-file Parquet reader; corrupt or foreign files are
skipped and named, never fatal.

One lazy scan reads all files, aligned by polars to the current `RESULT_SCHEMA` (columns an older schema version
lacks read as null; a newer file's extra columns are ignored), with the report's filters pushed into it. Files
that are not Parquet are found first by their magic bytes (cheap: eight bytes a file); a file that passes that
check and still breaks the bulk read is found by splitting the scan in halves, so the fast path survives it.
Per-cell files a run's `compacted.parquet` already holds are not read twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from benchmark.errors import ResultsError
from benchmark.results.compacted_file import (
    COMPACTED_NAME,
    Source,
    UnreadableCompactedFile,
    already_compacted,
    compacted_sources,
)
from benchmark.results.schema import (
    IDENTITY_COLUMNS,
    LEGACY_TOWER_COLUMNS,
    RESULT_SCHEMA,
    legacy_tower_presets,
    tower_column,
)
from benchmark.results.store import result_files

_MAGIC = b"PAR1"


@dataclass(frozen=True)
class RowFilter:
    """What a reader wants; pushed into the scan, so a report reads only what it shows."""

    suite: str | None = None
    run_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    def expression(self) -> pl.Expr | None:
        conditions = []
        if self.suite is not None:
            conditions.append(pl.col("suite") == self.suite)
        if self.run_ids:
            conditions.append(pl.col("run_id").is_in(list(self.run_ids)))
        if self.statuses:
            conditions.append(pl.col("status").is_in(list(self.statuses)))
        if not conditions:
            return None
        # Rows without an identity are kept through the filter: they name a foreign file.
        return pl.all_horizontal(conditions) | pl.col("cell_id").is_null()


def _polars_schema() -> pl.Schema:
    """The current schema, plus the columns older versions wrote that the reader folds into current ones."""
    current = pl.DataFrame(pl.from_arrow(RESULT_SCHEMA.empty_table())).schema
    return pl.Schema([*current.items(), *((name, pl.String()) for name in LEGACY_TOWER_COLUMNS)])


def _fold_legacy_columns(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows of schema 6 and older keep their towers' presets in `tower_presets`, as newer rows do."""
    legacy = list(LEGACY_TOWER_COLUMNS)
    if rows.select(pl.any_horizontal(pl.col(legacy).is_not_null()).any()).item():
        from_columns = pl.struct(legacy).map_elements(legacy_tower_presets, return_dtype=pl.String)
        rows = rows.with_columns(tower_presets=pl.coalesce(pl.col("tower_presets"), from_columns))
    return rows.drop(legacy)


def with_tower_columns(rows: pl.DataFrame) -> pl.DataFrame:
    """One `<modality>_tower` column (the preset) per modality any row's tower set has, plug-ins' included, in the
    order modalities first appear; null where a row's tower set lacks it."""
    modalities: dict[str, None] = {}
    for presets in rows["tower_presets"].drop_nulls().unique(maintain_order=True).to_list():
        modalities.update(dict.fromkeys(json.loads(presets)))
    return rows.with_columns(
        pl.col("tower_presets").str.json_path_match(f"$.{modality}").alias(tower_column(modality))
        for modality in modalities
    )


def _is_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(-4, 2)
            return head == _MAGIC and handle.read(4) == _MAGIC
    except OSError:  # shorter than eight bytes, or unreadable
        return False


def _without_compacted_sources(files: list[Path]) -> list[Path]:
    """Drop per-cell files whose rows are already in their run's compacted file (a compaction killed before it
    removed them)."""
    sources: dict[Path, set[Source]] = {}
    for path in files:
        if path.name == COMPACTED_NAME:
            try:
                sources[path.parent] = compacted_sources(path)
            except UnreadableCompactedFile:
                # Its rows cannot be read either: the scan below names it; every per-cell file left beside it is
                # read, as it may be the only readable copy of its row.
                sources[path.parent] = set()
    if not sources:
        return files
    return [p for p in files if p.name == COMPACTED_NAME or not already_compacted(p, sources.get(p.parent, set()))]


def _scan(files: Sequence[Path], row_filter: RowFilter) -> pl.LazyFrame:
    frame = pl.scan_parquet(
        [str(path) for path in files],
        schema=_polars_schema(),
        missing_columns="insert",
        extra_columns="ignore",
        include_file_paths="file",
        glob=False,
        hive_partitioning=False,
    )
    expression = row_filter.expression()
    return frame.filter(expression) if expression is not None else frame


def _read(files: Sequence[Path], row_filter: RowFilter, warnings: list[str]) -> list[pl.DataFrame]:
    """The rows of `files`; a file that breaks the bulk read is isolated by halving and named."""
    if not files:
        return []
    try:
        return [_scan(files, row_filter).collect()]
    except Exception as error:  # noqa: BLE001 - polars raises several types for a broken or incompatible file
        if len(files) == 1:
            warnings.append(f"skipped {files[0]}: not a readable mmbench result ({type(error).__name__}: {error})")
            return []
    middle = len(files) // 2
    return _read(files[:middle], row_filter, warnings) + _read(files[middle:], row_filter, warnings)


def empty_results() -> pl.DataFrame:
    empty = pl.DataFrame(pl.from_arrow(RESULT_SCHEMA.empty_table()))
    return pl.DataFrame(schema={**empty.schema, "file": pl.String})


def read_files(files: Sequence[Path], row_filter: RowFilter | None = None) -> tuple[pl.DataFrame, list[str]]:
    """(rows, warnings) of these Parquet files in one scan: non-Parquet, broken and foreign files are named in
    warnings and left out. Rows carry their `file`."""
    row_filter = row_filter or RowFilter()
    warnings: list[str] = []
    readable = []
    for path in files:
        if _is_parquet(path):
            readable.append(path)
        else:
            warnings.append(f"skipped {path}: not a readable Parquet file (no Parquet header and footer)")
    frames = _read(readable, row_filter, warnings)
    if not frames:
        return empty_results(), warnings
    rows = _fold_legacy_columns(pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0])
    foreign = rows.filter(pl.any_horizontal(pl.col(list(IDENTITY_COLUMNS)).is_null()))
    if not foreign.is_empty():
        for path in foreign["file"].unique(maintain_order=True).to_list():
            warnings.append(f"skipped {path}: not an mmbench result (missing {', '.join(IDENTITY_COLUMNS)})")
        rows = rows.filter(pl.all_horizontal(pl.col(list(IDENTITY_COLUMNS)).is_not_null()))
    return rows, warnings


def read_results(
    results_dir: Path, row_filter: RowFilter | None = None, **filters: Any
) -> tuple[pl.DataFrame, list[str]]:
    """(rows, warnings) of a results directory, a run directory or one Parquet file, filtered by `row_filter`
    (or its fields as keywords), with a `<modality>_tower` column per modality of their tower sets. A file that is
    not a readable result row is reported in warnings, not fatal."""
    if not results_dir.exists():
        raise ResultsError(
            f"results directory {results_dir} does not exist (run `mmbench run SUITE --results {results_dir}` first)"
        )
    files = [results_dir] if results_dir.is_file() else result_files(results_dir)
    rows, warnings = read_files(_without_compacted_sources(files), row_filter or RowFilter(**filters))
    return with_tower_columns(rows), warnings
