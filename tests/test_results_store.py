from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from benchmark import SCHEMA_VERSION
from benchmark.errors import ResultsError
from benchmark.results.read import read_results
from benchmark.results.schema import COLUMNS, RESULT_SCHEMA, metric_columns, row_to_table
from benchmark.results.store import ensure_writable, write_row


def test_row_always_has_every_column_and_rejects_strangers():
    table = row_to_table({"cell_id": "a", "status": "ok"})
    assert table.schema.equals(RESULT_SCHEMA) and table.column_names == COLUMNS
    assert table.column("nvml_peak_process_gib")[0].as_py() is None
    with pytest.raises(ValueError, match="outside the schema"):
        row_to_table({"cell_id": "a", "status": "ok", "nonsense": 1})
    with pytest.raises(ValueError, match="status"):
        row_to_table({"cell_id": "a", "status": "fine"})
    assert "test_ndcg@10" in metric_columns() and "valid_mrr" in metric_columns()


def test_write_is_atomic_and_readable_with_polars(tmp_path):
    path = write_row(tmp_path / "run" / "cell.parquet", {"cell_id": "a/b", "status": "ok", "step_ms": [1.0, 2.0]})
    assert sorted(os.listdir(path.parent)) == ["cell.parquet"]  # no temporary left behind
    assert pq.read_schema(path).metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    frame, warnings = read_results(tmp_path)
    assert warnings == [] and frame["cell_id"].to_list() == ["a/b"] and frame["step_ms"].to_list() == [[1.0, 2.0]]


def test_corrupt_file_is_skipped_and_named(tmp_path):
    write_row(tmp_path / "good.parquet", {"cell_id": "good", "status": "ok"})
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    frame, warnings = read_results(tmp_path)
    assert frame["cell_id"].to_list() == ["good"]
    assert len(warnings) == 1 and "broken.parquet" in warnings[0]


def test_unwritable_results_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ResultsError, match="not writable"):
        ensure_writable(blocker / "results")


def test_missing_results_directory(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        read_results(tmp_path / "nothing")
