"""Compaction: a finished run's per-cell Parquet files merged into one file per run, so a store of many runs
reads in seconds (reading costs about 0.2 ms per file, however small: the footer is parsed either way).

The merge never loses or doubles a row, wherever it is killed:

1. the rows of every per-cell file (and of an earlier compacted file) are written to a hidden temporary file
   (readers skip dot files), flushed and fsynced;
2. the temporary file is renamed to `compacted.parquet` (atomic); its metadata names every source file with
   its size and modification time, and readers ignore a per-cell file the compacted file already holds;
3. the sources are removed, then the directory is fsynced.

A kill before 2 leaves the per-cell files as they were (and a hidden temporary file the next compaction
removes); after 2, the leftovers are ignored by readers and removed by the next compaction. Only pyarrow is
used: `mmbench run` compacts its run where polars is not installed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.results.compacted_file import (
    COMPACTED_NAME,
    SOURCES_KEY,
    Source,
    UnreadableCompactedFile,
    already_compacted,
    compacted_sources,
)
from benchmark.results.schema import (
    COLUMNS,
    IDENTITY_COLUMNS,
    LEGACY_TOWER_COLUMNS,
    RESULT_SCHEMA,
    legacy_tower_presets,
)

_TEMPORARY_PREFIX = ".compacting-"


@dataclass(frozen=True)
class CompactionResult:
    run_dir: Path
    files_merged: int
    rows: int
    skipped: list[str]  # files that could not be read: left in place, named
    left_alone: str | None = None  # why the run was not compacted at all (its compacted file is damaged)


def _aligned(table: pa.Table) -> pa.Table:
    if table.schema.equals(RESULT_SCHEMA, check_metadata=False):  # the common case: written by this version
        return table
    legacy = [name for name in LEGACY_TOWER_COLUMNS if name in table.column_names]
    if legacy:  # written before schema 7: its tower columns become `tower_presets`, which the merge keeps
        rows = table.select(legacy).to_pylist()
        written = table.column("tower_presets").to_pylist() if "tower_presets" in table.column_names else None
        presets = [(written[index] if written else None) or legacy_tower_presets(row) for index, row in enumerate(rows)]
        table = table.drop_columns([*legacy, *(["tower_presets"] if written is not None else [])])
        table = table.append_column("tower_presets", pa.array(presets, type=pa.string()))
    for field in RESULT_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(table.num_rows, type=field.type))
    return table.select(COLUMNS).cast(RESULT_SCHEMA)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def per_cell_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.glob("*.parquet") if p.name != COMPACTED_NAME and not p.name.startswith("."))


def _read_candidates(paths: list[Path]) -> tuple[list[pa.Table], list[Path], list[str]]:
    """(tables aligned to the schema, the files they came from, files skipped and why). With polars, one bulk
    scan (about 0.5 ms a file); without it (the GPU image), pyarrow file by file (about 4 ms a file)."""
    try:
        from benchmark.results.read import read_files
    except ImportError:  # no polars
        return _read_one_by_one(paths)
    rows, warnings = read_files(paths)
    merged = {Path(name) for name in rows["file"].unique().to_list()} if not rows.is_empty() else set()
    table = _aligned(rows.drop("file").to_arrow().cast(RESULT_SCHEMA)) if merged else None
    return ([table] if table is not None else []), [p for p in paths if p in merged], warnings


def _read_one_by_one(paths: list[Path]) -> tuple[list[pa.Table], list[Path], list[str]]:
    tables, merged, skipped = [], [], []
    for path in paths:
        try:
            table = pq.ParquetFile(pa.BufferReader(path.read_bytes())).read(use_threads=False)
        except Exception as error:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            skipped.append(f"skipped {path}: not a readable Parquet file ({type(error).__name__})")
            continue
        if not set(IDENTITY_COLUMNS) <= set(table.column_names):
            skipped.append(f"skipped {path}: not an mmbench result")
            continue
        tables.append(_aligned(table))
        merged.append(path)
    return tables, merged, skipped


def compact_run(run_dir: Path) -> CompactionResult:
    """Merge the run's per-cell files (and any earlier compacted file) into `compacted.parquet`."""
    for stale in run_dir.glob(f"{_TEMPORARY_PREFIX}*"):  # a compaction killed before its rename
        stale.unlink()
    compacted = run_dir / COMPACTED_NAME
    files = per_cell_files(run_dir)
    try:
        known = compacted_sources(compacted) if compacted.exists() else set()
        if compacted.exists():
            pq.read_metadata(compacted)  # the merge rewrites its rows: a file whose schema reads but rows do not
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        # Merging would overwrite the damaged file, and perhaps the only copy of rows someone can still recover:
        # leave the run as it is, say so, and let readers go on reading its per-cell files.
        reason = error if isinstance(error, UnreadableCompactedFile) else UnreadableCompactedFile(compacted, error)
        return CompactionResult(
            run_dir, 0, 0, [], left_alone=f"{reason}; move it away (or delete it) to compact this run again"
        )
    leftovers = [path for path in files if already_compacted(path, known)]
    candidates = [path for path in files if path not in leftovers]
    tables, merged, skipped = _read_candidates(candidates)
    if merged:
        if compacted.exists():
            tables.insert(0, _aligned(pq.read_table(compacted)))
        sources = sorted(known | {Source.of(path) for path in merged}, key=lambda source: source.name)
        table = pa.concat_tables(tables)
        metadata = {**(RESULT_SCHEMA.metadata or {}), SOURCES_KEY: json.dumps([s.__dict__ for s in sources]).encode()}
        temporary = run_dir / f"{_TEMPORARY_PREFIX}{os.getpid()}.parquet"
        with open(temporary, "wb") as handle:
            pq.write_table(table.replace_schema_metadata(metadata), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, compacted)
        _fsync_directory(run_dir)
    removed = merged + leftovers
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        _fsync_directory(run_dir)
    rows = pq.read_metadata(compacted).num_rows if compacted.exists() else 0
    return CompactionResult(run_dir, len(merged), rows, skipped)
