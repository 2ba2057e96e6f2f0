"""Resume after a kill: `mmbench run` killed with SIGKILL at random moments, then the same command again."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results.read import read_results
from tests.conftest import TINY_SUITE

METHODS = "[bitfit, {name: iisan_cached, options: {layer_stride: 1}}, lora]"


def _environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MMBENCH_CACHE": str(tmp_path / "cache"),
        "MMBENCH_LOCK_DIR": str(tmp_path / "locks"),
        "PYTHONUNBUFFERED": "1",
    }


def _command(suite: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", "run", str(suite), "--results", str(results)]


def _cell_processes(results: Path) -> list[psutil.Process]:
    """Cell and cache-build children of a run: their command line names a cell file under `results`."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if str(results) in command and "benchmark.launch." in command:
            found.append(process)
    return found


def kill_and_resume(tmp_path: Path, kills: int, seed: int) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE.format(methods=METHODS, max_steps=4, eval="false"))
    results = tmp_path / "results"
    environment = _environment(tmp_path)
    moments = random.Random(seed)
    for _ in range(kills):
        run = subprocess.Popen(
            _command(suite, results), env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(moments.uniform(1.0, 9.0))
        run.kill()  # SIGKILL: what a CI timeout does; no handler in the parent runs
        run.wait()
        deadline = time.monotonic() + 5.0
        while _cell_processes(results) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = _cell_processes(results)
        assert not orphans, f"orphaned cell processes {[p.pid for p in orphans]}"
    final = subprocess.run(
        [*_command(suite, results), "--json"], env=environment, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert all(cell["status"] == "ok" for cell in summary["cells"])
    frame, warnings = read_results(results)
    assert warnings == []
    assert frame["status"].to_list() == ["ok"] * frame.height  # no false row (error, crashed) left by a kill
    assert sorted(frame["cell_id"].to_list()) == sorted(
        f"synth/micro/{m}/seed=0" for m in ("bitfit", "iisan_cached", "lora")
    )
    leftovers = [
        p for p in list(results.rglob(".*")) + list((tmp_path / "cache").rglob(".staging-*")) if p.name != ".gitkeep"
    ]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    again = subprocess.run(_command(suite, results), env=environment, capture_output=True, text=True, timeout=300)
    assert (
        again.returncode == 0
        and "nothing to run" in again.stderr
        and "3 of 3 cell(s) already have an ok row" in again.stderr
    )


@pytest.mark.slow  # 50 s: a run killed three times over; CI runs it with the slow tests
def test_killed_runs_resume_to_one_ok_row_per_cell(tmp_path):
    kill_and_resume(tmp_path, kills=3, seed=1)


@pytest.mark.slow
def test_ten_random_kills_then_resume(tmp_path):
    kill_and_resume(tmp_path, kills=10, seed=7)


runner = CliRunner()


def test_force_and_skip_failed(write_suite, tmp_path, monkeypatch):
    from benchmark.launch import local

    path = write_suite(methods="[bitfit, lora]", max_steps=2, evaluate=False)
    results = tmp_path / "results"
    first = runner.invoke(app, ["run", str(path), "--results", str(results), "--only", "*/bitfit/*", "--json"])
    assert first.exit_code == 0, first.output
    monkeypatch.setattr(local, "CELL_COMMAND", [sys.executable, "-c", "import os; os._exit(9)"])
    crashed = runner.invoke(app, ["run", str(path), "--results", str(results), "--json"])
    assert json.loads(crashed.stdout)["skipped"][0]["cell_id"] == "synth/micro/bitfit/seed=0"
    assert [c["status"] for c in json.loads(crashed.stdout)["cells"]] == ["crashed"]
    kept = runner.invoke(app, ["run", str(path), "--results", str(results), "--skip-failed"])
    assert kept.exit_code == 0 and "nothing to run" in kept.stderr and "1 cell(s) whose last row failed" in kept.stderr
    forced = runner.invoke(app, ["run", str(path), "--results", str(results), "--force", "--json"])
    assert len(json.loads(forced.stdout)["cells"]) == 2  # both re-run (and crash, with the stand-in cell program)


def test_a_cell_whose_parent_is_gone_stops_without_a_row(tmp_path):
    """The child checks the PID it was started by: with the parent gone before it armed its signal, it stops at once."""
    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"train": {}}))
    row = tmp_path / "row.parquet"
    environment = {**os.environ, "MMBENCH_PARENT_PID": "1"}  # not our parent: as if the real one had died
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.launch.cell_main", str(cell), str(row), "run"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 143 and "no row written" in done.stderr and not row.exists()
