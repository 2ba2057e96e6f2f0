"""`make rows-equal`'s comparison (scripts/same_rows.py): rows that differ only in what each run measures anew are
the same; a difference in anything else (an accuracy, a parameter count) is named, with exit 1."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "same_rows.py"


def _same_rows():
    spec = importlib.util.spec_from_file_location("same_rows", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store(directory: Path, **changes: object) -> Path:
    row = {
        "cell_id": "synth/tiny/lora/seed=0",
        "run_id": "smoke-1",
        "trainable_params": 1234,
        "test_ndcg@10": 0.25,
        "batch_size": 8,
        "step_ms_median": 10.0,
        "epoch_s": 1.5,
        "peak_mem_gib": 0.5,
        "start_time": "2026-12-05T00:00:00",
    }
    run = directory / "smoke-1"
    run.mkdir(parents=True)
    pl.DataFrame([{**row, **changes}]).write_parquet(run / "cell.parquet")
    return directory


def test_rows_that_differ_only_in_measurements_are_equal_and_anything_else_is_named(tmp_path, capsys):
    same_rows = _same_rows()
    base = _store(tmp_path / "base")
    again = _store(tmp_path / "again", run_id="smoke-2", step_ms_median=12.5, epoch_s=1.7, start_time="later")
    assert same_rows.main(str(base), str(again)) == 0
    assert capsys.readouterr().out.endswith("equal\n")
    changed = _store(tmp_path / "changed", **{"test_ndcg@10": 0.3, "batch_size": 16})
    assert same_rows.main(str(base), str(changed)) == 1
    out = capsys.readouterr().out
    assert "test_ndcg@10: 0.25 vs 0.3" in out and "batch_size: 8 vs 16" in out and "2 difference(s)" in out
