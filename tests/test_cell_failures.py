"""A failing cell always leaves a row with its status and error; the suite goes on."""

from __future__ import annotations

import dataclasses
import sys

import polars as pl
import pytest

from benchmark.launch import local
from benchmark.plan.loader import load_suite
from benchmark.results.read import read_results
from benchmark.suite.matrix import Cell, expand_cells


@pytest.fixture
def cell(write_suite):
    return expand_cells(load_suite(write_suite(methods="[lora]", max_steps=2, evaluate=False)))[0]


def run_with(monkeypatch, cell, tmp_path, command):
    monkeypatch.setattr(local, "CELL_COMMAND", command)
    outcome = local.run_cell_subprocess(cell, tmp_path / "run", "run-1")
    frame, _ = read_results(tmp_path)
    return outcome, frame.row(0, named=True)


def test_crashed_cell_gets_a_row_with_the_log_tail(monkeypatch, cell, tmp_path):
    crash = [sys.executable, "-c", "import sys, os; sys.stderr.write('segfault-ish trouble\\n'); os._exit(139)"]
    outcome, row = run_with(monkeypatch, cell, tmp_path, crash)
    assert outcome.status == row["status"] == "crashed"
    assert "exit code 139" in row["error"] and "segfault-ish trouble" in row["error"]
    assert row["cell_id"] == cell.cell_id and row["method"] == "lora" and row["config_hash"] == cell.config_hash
    import torch  # the launcher's row names the versions it can know without importing torch itself

    assert row["torch_version"] == torch.__version__ and row["mmbench_version"]


def test_hung_cell_is_killed_and_recorded_as_timeout(monkeypatch, cell, tmp_path):
    cell = Cell(cell.cell_id, cell.config.replace(timeout_s=1.0))
    outcome, row = run_with(monkeypatch, cell, tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    assert outcome.status == row["status"] == "timeout"
    assert "timeout of 1 s" in row["error"]


def test_error_inside_the_cell_is_recorded_with_location(cell, tmp_path):
    dataset = dataclasses.replace(cell.config.dataset, format="amazon-iisan", path=str(tmp_path / "missing"))
    cell = Cell(cell.cell_id, cell.config.replace(dataset=dataset))
    outcome = local.run_cell_subprocess(cell, tmp_path / "run", "run-1")
    frame, _ = read_results(tmp_path)
    row = frame.row(0, named=True)
    assert outcome.status == row["status"] == "error"
    assert "DatasetError: dataset directory not found" in row["error"] and "(at registry.py:" in row["error"]
    assert row["trainable_params"] is None  # nothing measured, nothing invented


def test_rows_already_written_survive_a_later_failure(monkeypatch, write_suite, tmp_path):
    cells = expand_cells(load_suite(write_suite(methods="[bitfit, lora]", max_steps=2, evaluate=False)))
    local.run_cell_subprocess(cells[0], tmp_path / "run", "run-1")
    monkeypatch.setattr(local, "CELL_COMMAND", [sys.executable, "-c", "import os; os._exit(9)"])
    local.run_cell_subprocess(cells[1], tmp_path / "run", "run-1")
    frame, _ = read_results(tmp_path)
    statuses = dict(zip(frame["method"], frame["status"]))
    assert statuses == {"bitfit": "ok", "lora": "crashed"}
    assert frame.filter(pl.col("method") == "bitfit")["step_ms_median"][0] > 0


def test_interrupt_stops_the_cell_and_records_it(monkeypatch, cell, tmp_path):
    import os
    import signal
    import threading
    import time

    marker = tmp_path / "child.pid"
    monkeypatch.setattr(
        local,
        "CELL_COMMAND",
        [
            sys.executable,
            "-c",
            f"import os, time; open({str(marker)!r} + '.part', 'w').write(str(os.getpid())); "
            f"os.rename({str(marker)!r} + '.part', {str(marker)!r}); time.sleep(60)",  # the marker appears whole
        ],
    )

    def interrupt_once_the_child_runs() -> None:
        # Not after a fixed delay: on a loaded machine the child may not have started by then.
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    # A shell starts `make test &` with SIGINT ignored (POSIX, for background jobs), and Python then raises no
    # KeyboardInterrupt: the interrupt this test sends must be Python's, however pytest was started.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_once_the_child_runs, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            outcome = local.run_cell_subprocess(cell, tmp_path / "run", "run-1")
            pytest.fail(f"the launcher returned instead of being interrupted: {outcome}")
    finally:
        signal.signal(signal.SIGINT, previous)
    frame, _ = read_results(tmp_path)
    assert frame["status"].to_list() == ["crashed"] and "interrupted" in frame["error"][0]
    child = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the cell's process is gone, not orphaned
