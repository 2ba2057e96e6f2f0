"""Two `mmbench run` into one results directory measure no cell twice: the symptom was that the second run waited
for the device lock, then re-ran every cell the first had finished meanwhile."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.launch import local
from benchmark.plan.loader import load_suite
from benchmark.results.manifest import new_manifest
from benchmark.results.read import read_results
from benchmark.results.schema import empty_row
from benchmark.results.store import write_row
from benchmark.suite.matrix import expand_cells
from tests.conftest import TINY_SUITE

NEVER_RUN = [sys.executable, "-c", "raise SystemExit('this cell must not run: another run finished it')"]


def _ok_row(cell, run_id: str) -> dict:
    row = empty_row()
    row.update(
        suite="tiny",
        run_id=run_id,
        cell_id=cell.cell_id,
        config_hash=cell.config_hash,
        status="ok",
        cpu=platform.processor() or platform.machine(),
    )
    return row


def test_a_cell_another_run_finished_since_this_run_began_is_skipped(write_suite, tmp_path, monkeypatch):
    [first, second] = expand_cells(load_suite(write_suite(methods="[bitfit, lora]", evaluate=False)))
    results = tmp_path / "results"
    before = results / "earlier-run"
    write_row(before / "lora.parquet", _ok_row(second, "earlier"))  # before this run began: resume's business
    time.sleep(0.05)
    run_dir = results / "this-run"
    run_dir.mkdir(parents=True)
    new_manifest([first, second], "this-run", "tiny", "local").write(run_dir)
    time.sleep(0.05)
    write_row(results / "other-run" / "bitfit.parquet", _ok_row(first, "other"))  # finished while this run ran

    monkeypatch.setattr(local, "CELL_COMMAND", NEVER_RUN)
    skipped = local.run_cell_subprocess(first, run_dir, "this-run")
    assert skipped.status == "skipped" and "other-run" in str(skipped.error)
    assert not (run_dir / "bitfit.parquet").exists()  # no row: the other run's row is the measurement

    ran = local.run_cell_subprocess(second, run_dir, "this-run")  # its ok row predates this run: it runs
    assert ran.status == "crashed" and "this cell must not run" in str(ran.error)

    status = CliRunner().invoke(app, ["status", str(run_dir), "--json"])
    states = {cell["cell_id"]: cell["state"] for cell in json.loads(status.stdout)["cells"]}
    assert states == {first.cell_id: "skipped", second.cell_id: "failed"}


def test_no_lock_means_no_check(write_suite, tmp_path, monkeypatch):
    """--no-lock runs side by side on purpose: nothing guarantees the other run's row is written, so no check."""
    [cell] = expand_cells(load_suite(write_suite(methods="[bitfit]", evaluate=False)))
    run_dir = tmp_path / "results" / "this-run"
    run_dir.mkdir(parents=True)
    new_manifest([cell], "this-run", "tiny", "local").write(run_dir)
    write_row(tmp_path / "results" / "other" / "bitfit.parquet", _ok_row(cell, "other"))
    monkeypatch.setattr(local, "CELL_COMMAND", NEVER_RUN)
    assert local.run_cell_subprocess(cell, run_dir, "this-run", lock=False).status == "crashed"


@pytest.mark.slow
def test_two_runs_into_one_results_directory_measure_each_cell_once(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE.format(methods="[bitfit, lora, adapter]", max_steps=3, eval="false"))
    results = tmp_path / "results"
    environment = {**os.environ, "MMBENCH_CACHE": str(tmp_path / "cache"), "MMBENCH_LOCK_DIR": str(tmp_path / "l")}
    command = [sys.executable, "-m", "benchmark", "run", str(suite), "--results", str(results), "--json"]
    first = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    frame, warnings = read_results(results)
    assert warnings == []
    assert sorted(frame["cell_id"].to_list()) == sorted(set(frame["cell_id"].to_list()))  # one row per cell
    assert frame.height == 3
