"""A cell the kernel's out-of-memory killer ends (SIGKILL, no row of its own) gets a row that says so, with the last
host-memory reading the launcher took of it (issue 24: the row said only `crashed ... signal 9`)."""

from __future__ import annotations

import re
import sys

import pytest

from benchmark.launch import local
from benchmark.launch.child_process import ChildResult
from benchmark.plan.loader import load_suite
from benchmark.results.read import read_results
from benchmark.suite.matrix import expand_cells

# Holds 200 MiB of written pages, lets the launcher read its memory, then dies as the OOM killer would end it.
GROW_THEN_DIE = (
    "import os, signal, sys, time\n"
    "held = b'x' * (200 << 20)\n"
    "sys.stderr.write('allocated\\n')\n"
    "time.sleep(1.0)\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)


@pytest.fixture
def cell(write_suite):
    return expand_cells(load_suite(write_suite(methods="[lora]", max_steps=2, evaluate=False)))[0]


def test_a_cell_killed_by_sigkill_says_out_of_memory_with_its_last_reading(monkeypatch, cell, tmp_path):
    monkeypatch.setattr(local, "CELL_COMMAND", [sys.executable, "-c", GROW_THEN_DIE])
    outcome = local.run_cell_subprocess(cell, tmp_path / "run", "run-1")
    frame, _ = read_results(tmp_path)
    row = frame.row(0, named=True)
    assert outcome.status == row["status"] == "crashed"
    error = row["error"]
    assert "signal 9, SIGKILL, not sent by mmbench: most likely the kernel's out-of-memory killer" in error
    reading = re.search(r"last host-memory reading: ([\d.]+) GiB resident", error)
    assert reading is not None and float(reading.group(1)) >= 0.19, error  # the 200 MiB it held
    assert "allocated" in error  # the log tail still follows


def test_a_sigkill_the_launcher_sent_is_not_blamed_on_memory(tmp_path):
    log = tmp_path / "cell.log"
    log.write_text("")
    interrupted = ChildResult(None, -9, False, None, 0.0, killed_here=True)
    assert "sent by mmbench: the run was interrupted" in local._died(interrupted, log, "cell")
    other = ChildResult(None, 139, False)
    assert "(exit code 139)" in local._died(other, log, "cell")
