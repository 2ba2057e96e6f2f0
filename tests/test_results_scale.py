"""The results store at scale: one bulk read equal to reading file by file, corrupt and foreign files named, and
compaction that loses and doubles nothing wherever it is killed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results import compaction
from benchmark.results.compacted_file import COMPACTED_NAME
from benchmark.results.compaction import compact_run
from benchmark.results.manifest import Manifest
from benchmark.results.read import RowFilter, read_results
from benchmark.results.schema import COLUMNS, RESULT_SCHEMA
from benchmark.results.store import write_row
from benchmark.results.synthetic_store import synthetic_rows, write_store

runner = CliRunner()


def _per_file(files: list[Path]) -> pl.DataFrame:
    """The reference: each file with pyarrow, aligned to the schema one by one (the reader before the bulk path)."""
    frames = []
    for path in files:
        table = pq.read_table(path)
        for field in RESULT_SCHEMA:
            if field.name not in table.column_names:
                table = table.append_column(field.name, pa.nulls(table.num_rows, type=field.type))
        frames.append(pl.DataFrame(pl.from_arrow(table.select(COLUMNS).cast(RESULT_SCHEMA))))
    return pl.concat(frames).sort("cell_id")


def _old_row(row: dict, dropped: tuple[str, ...]) -> pa.Table:
    """A row as an older schema version wrote it: without the columns added since."""
    table = pa.Table.from_pylist([row], schema=RESULT_SCHEMA)
    return table.drop_columns(list(dropped)).replace_schema_metadata({b"schema_version": b"2"})


def _store(tmp_path: Path) -> list[Path]:
    rows = synthetic_rows(40)
    files = []
    for index, row in enumerate(rows):
        path = tmp_path / f"run-{index % 3}" / f"cell-{index}.parquet"
        if index % 4 == 0:  # a quarter written before the FLOP, compile and placement columns existed
            path.parent.mkdir(parents=True, exist_ok=True)
            old = {**row, "schema_version": 2}
            pq.write_table(_old_row(old, ("flops_per_step", "compiled", "tta_s", "launcher", "node")), path)
        else:
            write_row(path, row)
        files.append(path)
    return files


def test_the_bulk_read_equals_reading_file_by_file_including_old_schema_versions(tmp_path):
    files = _store(tmp_path)
    rows, warnings = read_results(tmp_path)
    assert warnings == []
    bulk = rows.drop("file").sort("cell_id")
    reference = _per_file(files)
    assert bulk.schema == reference.schema and bulk.height == 40
    assert bulk.equals(reference)
    old = rows.filter(pl.col("schema_version") == 2)
    assert old.height == 10 and old["flops_per_step"].null_count() == 10 and old["launcher"].null_count() == 10
    assert set(rows["file"].to_list()) == {str(path) for path in files}


def test_filters_are_pushed_into_the_read(tmp_path):
    _store(tmp_path)
    rows, _ = read_results(tmp_path, RowFilter(run_ids=("bench-00000",), statuses=("ok",)))
    everything, _ = read_results(tmp_path)
    expected = everything.filter((pl.col("run_id") == "bench-00000") & (pl.col("status") == "ok"))
    assert rows.height == expected.height > 0
    assert read_results(tmp_path, suite="no-such-suite")[0].is_empty()


def test_broken_foreign_and_incompatible_files_are_named_and_the_rest_is_read(tmp_path):
    files = _store(tmp_path)
    (tmp_path / "run-0" / "garbage.parquet").write_bytes(b"garbage")
    # Parquet magic at both ends, nothing valid between: passes the cheap check, breaks the bulk read.
    (tmp_path / "run-1" / "hollow.parquet").write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "run-2" / "foreign.parquet")
    pq.write_table(pa.table({"cell_id": ["c"], "status": [3], "schema_version": [1]}), tmp_path / "int-status.parquet")
    rows, warnings = read_results(tmp_path)
    assert rows.drop("file").sort("cell_id").equals(_per_file(files))
    named = {Path(w.split(": ")[0].removeprefix("skipped ")).name for w in warnings}
    assert named == {"garbage.parquet", "hollow.parquet", "foreign.parquet", "int-status.parquet"}
    assert any("foreign.parquet" in w and "not an mmbench result" in w for w in warnings)


def _rows_of(directory: Path) -> pl.DataFrame:
    rows, warnings = read_results(directory)
    assert not [w for w in warnings if "garbage" not in w]
    return rows.drop("file").sort("cell_id")


class Killed(Exception):
    """Stands for SIGKILL at one step of the compaction."""


@pytest.mark.parametrize("step", ["write", "rename", "first-removal", "later-removal"])
def test_a_compaction_killed_at_any_step_loses_and_doubles_nothing(tmp_path, monkeypatch, step):
    run_dir = tmp_path / "run"
    for index, row in enumerate(synthetic_rows(12)):
        write_row(run_dir / f"cell-{index}.parquet", row)
    before = _rows_of(tmp_path)
    removals = {"count": 0}
    real_unlink, real_replace, real_write = Path.unlink, os.replace, pq.write_table

    def write_then_die(table, where, **kwargs):
        real_write(table, where, **kwargs)
        raise Killed

    def unlink(self, missing_ok=False):
        if self.suffix == ".parquet" and not self.name.startswith("."):
            removals["count"] += 1
            if (step == "first-removal" and removals["count"] == 1) or (
                step == "later-removal" and removals["count"] == 5
            ):
                raise Killed
        return real_unlink(self, missing_ok=missing_ok)

    def replace(source, target):
        if step == "rename":
            raise Killed
        return real_replace(source, target)

    if step == "write":
        monkeypatch.setattr(compaction.pq, "write_table", write_then_die)
    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(compaction.os, "replace", replace)
    with pytest.raises(Killed):
        compact_run(run_dir)
    monkeypatch.undo()
    assert _rows_of(tmp_path).equals(before)  # mid-compaction: every row once
    result = compact_run(run_dir)  # the next compaction finishes the job
    assert sorted(p.name for p in run_dir.iterdir()) == [COMPACTED_NAME]
    assert _rows_of(tmp_path).equals(before) and result.rows == 12


def test_compacting_again_merges_new_files_and_pyarrow_alone_reads_the_same(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    rows = synthetic_rows(8)
    for index, row in enumerate(rows[:5]):
        write_row(run_dir / f"cell-{index}.parquet", row)
    compact_run(run_dir)
    for index, row in enumerate(rows[5:], start=5):  # a late row (a resumed SLURM task, say)
        write_row(run_dir / f"cell-{index}.parquet", row)
    mixed = _rows_of(tmp_path)  # a store mixing compacted and per-cell files
    assert mixed.height == 8
    monkeypatch.setattr(compaction, "_read_candidates", compaction._read_one_by_one)  # the GPU image: no polars
    assert compact_run(run_dir).rows == 8
    assert _rows_of(tmp_path).equals(mixed)
    metadata = pq.read_schema(run_dir / COMPACTED_NAME).metadata
    assert len(json.loads(metadata[compaction.SOURCES_KEY])) == 8 and metadata[b"schema_version"]


def test_a_run_compacts_itself_and_stays_resumable(write_suite, tmp_path):
    suite = write_suite(methods="[lora, bitfit]", max_steps=2, evaluate=False)
    results = tmp_path / "results"
    first = runner.invoke(app, ["run", str(suite), "--results", str(results), "--json"])
    assert first.exit_code == 0, first.output
    run_dir = Path(json.loads(first.stdout)["run_dir"])
    assert sorted(p.name for p in run_dir.glob("*.parquet")) == [COMPACTED_NAME]
    assert {c["row"] for c in json.loads(first.stdout)["cells"]} == {str(run_dir / COMPACTED_NAME)}
    status = runner.invoke(app, ["status", str(run_dir), "--json"])
    assert status.exit_code == 0 and {c["state"] for c in json.loads(status.stdout)["cells"]} == {"done"}
    again = runner.invoke(app, ["run", str(suite), "--results", str(results), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["cells"] == []  # resume reads the compacted file


def test_results_compact_leaves_a_running_run_alone(tmp_path):
    finished, running = tmp_path / "finished", tmp_path / "running"
    rows = synthetic_rows(4)
    for index, row in enumerate(rows):
        write_row((finished if index < 2 else running) / f"cell-{index}.parquet", row)
    cells = [{"cell_id": "later", "config_hash": "x", "row": "later.parquet"}]
    Manifest("r", "s", "local", __import__("socket").gethostname(), os.getpid(), cells).write(running)
    outcome = runner.invoke(app, ["results", "compact", "--results", str(tmp_path), "--json"])
    assert outcome.exit_code == 0, outcome.output
    actions = {Path(entry["run_dir"]).name: entry for entry in json.loads(outcome.stdout)}
    assert actions["finished"]["action"] == "compacted" and actions["finished"]["rows"] == 2
    assert actions["running"]["action"].startswith("running")
    assert len(list(running.glob("cell-*.parquet"))) == 2


def test_the_synthetic_store_has_what_the_benchmark_needs(tmp_path):
    broken = write_store(tmp_path, 200, corrupt=2)
    rows, warnings = read_results(tmp_path)
    assert rows.height == 200 and len(warnings) == 2 and all(str(path) in " ".join(warnings) for path in broken)
    assert rows["method"].n_unique() == 8 and rows["gpu_name"].n_unique() == 1


def _schema_5_row(row: dict, **towers: str) -> pa.Table:
    """A row as schema 5 wrote it: a column per built-in modality, no `tower_presets`."""
    table = pa.Table.from_pylist([{**row, "schema_version": 5}], schema=RESULT_SCHEMA).drop_columns(["tower_presets"])
    for modality in ("text", "image", "video", "audio"):
        table = table.append_column(f"{modality}_tower", pa.array([towers.get(modality)], type=pa.string()))
    return table


@pytest.mark.parametrize("without_polars", [False, True])
def test_rows_written_before_schema_7_keep_their_towers_when_read_and_compacted(tmp_path, monkeypatch, without_polars):
    old, new = synthetic_rows(2)
    run = tmp_path / "run-a"
    run.mkdir()
    pq.write_table(_schema_5_row(old, text="bert-base", image="vit-base"), run / "old.parquet")
    write_row(run / "new.parquet", {**new, "tower_presets": json.dumps({"text": "bert-tiny", "glyph": "glyph-micro"})})
    rows = read_results(tmp_path)[0].sort("schema_version")
    assert json.loads(rows["tower_presets"][0]) == {"text": "bert-base", "image": "vit-base"}
    assert rows["text_tower"].to_list() == ["bert-base", "bert-tiny"]
    assert rows["image_tower"].to_list() == ["vit-base", None] and rows["glyph_tower"].to_list() == [
        None,
        "glyph-micro",
    ]
    assert "video_tower" not in rows.columns  # no row has a video tower
    if without_polars:  # the GPU image compacts with pyarrow alone
        monkeypatch.setattr(compaction, "_read_candidates", compaction._read_one_by_one)
    compact_run(run)
    compacted = read_results(tmp_path)[0].sort("schema_version")
    assert compacted["text_tower"].to_list() == ["bert-base", "bert-tiny"]
    assert compacted["image_tower"].to_list() == ["vit-base", None]
