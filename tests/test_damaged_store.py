"""Every reader of a results directory skips and names a damaged file, compacted or per-cell, with one warning line;
none ends in a traceback, and `compare` never says "regression" (exit 1) because a file is damaged."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.launch.resume import _previous_outcomes
from benchmark.results.compacted_file import COMPACTED_NAME
from benchmark.results.compaction import compact_run
from benchmark.results.manifest import Manifest
from tests.test_compare import GPU, runs, write_side

DAMAGES = ("truncated", "garbage", "empty", "foreign", "scrambled")


def damage(path: Path, kind: str) -> None:
    """Leave `path` in a state a disk, a copy or a person can leave a Parquet file in."""
    data = path.read_bytes()
    if kind == "truncated":  # a copy cut short: no footer
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(os.urandom(2048))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":  # a valid Parquet file of something else
        pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    elif kind == "scrambled":  # Parquet's magic bytes at both ends, rubbish between
        path.write_bytes(b"PAR1" + os.urandom(len(data) - 8) + b"PAR1")
    else:
        raise ValueError(kind)


def compacted_run(directory: Path, seed: int = 1, method: str = "lora") -> Path:
    """A finished run of three repeats merged into `compacted.parquet`."""
    write_side(directory, runs(seed, method=method))
    result = compact_run(directory)
    assert result.files_merged == 3 and (directory / COMPACTED_NAME).exists()
    return directory / COMPACTED_NAME


def store(root: Path, damaged: str, kind: str) -> Path:
    """Two runs under `root`: a healthy one of iisan, and lora's whose compacted or per-cell file is damaged."""
    write_side(root / "healthy", runs(3, method="iisan"))
    if damaged == "compacted":
        victim = compacted_run(root / "lora")
    else:
        write_side(root / "lora", runs(1))
        victim = sorted((root / "lora").glob("*.parquet"))[0]
    damage(victim, kind)
    return victim


def skipped_lines(stderr: str, victim: Path) -> list[str]:
    return [line for line in stderr.splitlines() if str(victim) in line]


@pytest.mark.parametrize("damaged", ["compacted", "per-cell"])
@pytest.mark.parametrize("kind", DAMAGES)
def test_report_skips_and_names_a_damaged_file(tmp_path, damaged, kind):
    victim = store(tmp_path, damaged, kind)
    outcome = CliRunner().invoke(app, ["report", "--results", str(tmp_path), "--format", "csv"])
    assert outcome.exit_code == 0, outcome.output
    assert len(skipped_lines(outcome.stderr, victim)) == 1, outcome.stderr
    assert "iisan" in outcome.stdout  # the healthy run is still reported


@pytest.mark.parametrize("damaged", ["compacted", "per-cell"])
@pytest.mark.parametrize("kind", DAMAGES)
def test_compare_with_a_damaged_file_names_it_and_never_exits_1(tmp_path, damaged, kind):
    victim = store(tmp_path / "baseline", damaged, kind)
    current = write_side(tmp_path / "current", runs(4, method="iisan") + runs(2))
    outcome = CliRunner().invoke(app, ["compare", str(tmp_path / "baseline"), str(current)])
    assert outcome.exit_code == 0, outcome.output  # iisan compared; lora only in current
    assert len(skipped_lines(outcome.stderr, victim)) == 1, outcome.stderr
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize("kind", DAMAGES)
def test_compare_whose_only_file_is_damaged_is_unusable_input_naming_it(tmp_path, kind):
    victim = compacted_run(tmp_path / "baseline")
    damage(victim, kind)
    current = write_side(tmp_path / "current", runs(2))
    outcome = CliRunner().invoke(app, ["compare", str(tmp_path / "baseline"), str(current)])
    assert outcome.exit_code == 2, outcome.output
    assert str(victim) in outcome.stderr and "Traceback" not in outcome.output


@pytest.mark.parametrize("kind", DAMAGES)
def test_status_names_a_damaged_compacted_file_and_shows_every_cell(tmp_path, kind):
    run_dir = tmp_path / "run"
    victim = compacted_run(run_dir)
    cells = [{"cell_id": row["cell_id"], "config_hash": row["config_hash"], "row": "x.parquet"} for row in runs(1)]
    Manifest("run-1", "regression", "local", socket.gethostname(), 2**22 + 1, cells).write(run_dir)
    damage(victim, kind)
    outcome = CliRunner().invoke(app, ["status", str(run_dir)])
    assert outcome.exit_code == 0, outcome.output
    assert len(skipped_lines(outcome.stderr, victim)) == 1, outcome.stderr
    assert outcome.stdout.count("synth/tiny/lora") == 3


@pytest.mark.parametrize("kind", DAMAGES)
def test_resume_names_a_damaged_compacted_file_and_reads_the_rest(tmp_path, kind):
    victim = compacted_run(tmp_path / "lora")
    write_side(tmp_path / "healthy", runs(3, method="iisan"))
    damage(victim, kind)
    outcomes, unreadable = _previous_outcomes(tmp_path)
    assert {config_hash for config_hash, _ in outcomes} == {"iisan-0", "iisan-1", "iisan-2"}
    assert len([line for line in unreadable if str(victim) in line]) == 1


@pytest.mark.parametrize("kind", DAMAGES)
def test_compaction_leaves_a_run_with_a_damaged_compacted_file_alone(tmp_path, kind):
    run_dir = tmp_path / "lora"
    victim = compacted_run(run_dir)
    damage(victim, kind)
    damaged_bytes = victim.read_bytes()
    write_side(run_dir, runs(5, method="adapter"))  # rows written after the compaction
    outcome = CliRunner().invoke(app, ["results", "compact", "--results", str(tmp_path), "--json"])
    assert outcome.exit_code == 0, outcome.output
    [result] = json.loads(outcome.stdout)
    assert result["action"].startswith("left alone") and str(victim) in result["action"]
    assert victim.read_bytes() == damaged_bytes  # never overwritten: it may be someone's only copy
    assert len(list(run_dir.glob("adapter-*.parquet"))) == 3  # the new rows stay where readers find them


@pytest.mark.parametrize("kind", DAMAGES)
def test_compaction_names_a_damaged_compacted_file_with_nothing_else_to_merge(tmp_path, kind):
    victim = compacted_run(tmp_path / "lora")
    damage(victim, kind)
    outcome = CliRunner().invoke(app, ["results", "compact", "--results", str(tmp_path)])
    assert outcome.exit_code == 0, outcome.output
    assert "left alone" in outcome.stdout and str(victim) in outcome.stdout  # not "unchanged"


def test_a_crashed_cell_does_not_make_the_current_side_other_hardware(tmp_path):
    """The symptom: a failure row (written by the launcher) has no torch or CUDA version, and compare said
    "refusing to compare timings across hardware" with identical hardware on both sides."""
    baseline = write_side(tmp_path / "baseline", runs(1) + runs(3, method="iisan"))
    crashed = runs(4, method="iisan", repeats=1, status="crashed", torch_version=None, cuda_version=None)
    crashed[0].update(error="cell process died (signal 9) before writing its row", config_hash="iisan-crash")
    current = write_side(tmp_path / "current", runs(2) + runs(5, method="iisan", repeats=2) + crashed)
    outcome = CliRunner().invoke(app, ["compare", str(baseline), str(current), "--json"])
    assert "refusing" not in outcome.stderr
    assert outcome.exit_code == 3, outcome.output
    document = json.loads(outcome.stdout)
    assert document["exit_meaning"] == "failed cells in the current side"
    assert document["failed_in_current"] == [
        "synth/tiny/iisan/seed=0/repeat=0 (crashed: cell process died (signal 9) before writing its row)"
    ]
    assert document["hardware"] == [{"hardware": GPU["gpu_name"], "driver_major": "580", **_versions()}]
    markdown = CliRunner().invoke(app, ["compare", str(baseline), str(current)])
    assert "**Failed in the current results**" in markdown.stdout and "exit 3" in markdown.stderr


def _versions() -> dict[str, str]:
    return {"cuda_version": GPU["cuda_version"], "torch_version": "2.11.0+cu130"}


def test_exit_codes_each_mean_one_thing(tmp_path):
    baseline = write_side(tmp_path / "baseline", runs(1) + runs(3, method="iisan"))

    def code(name: str, rows: list[dict], *options: str) -> int:
        return CliRunner().invoke(app, ["compare", str(baseline), str(write_side(tmp_path / name, rows)), *options])

    assert code("same", runs(2) + runs(4, method="iisan")).exit_code == 0
    assert code("slower", runs(2) + runs(4, method="iisan", slowdown=1.3)).exit_code == 1
    assert code("oom", runs(2) + runs(4, method="iisan", status="oom")).exit_code == 1  # no longer fits
    errored = runs(4, method="iisan", status="error")
    assert code("error", runs(2) + errored).exit_code == 3  # nothing measured: failed, not regressed
    both = code("both", runs(2, slowdown=1.3) + runs(4, method="iisan", status="error"))
    assert both.exit_code == 1  # a regression wins over failed cells
    few = runs(2, repeats=1, steps=3) + runs(4, method="iisan", repeats=1, steps=3)
    assert code("few", few).exit_code == 0
    assert code("few-strict", few, "--fail-on-inconclusive").exit_code == 4
    assert code("unusable", runs(5, method="fft")).exit_code == 2


def test_an_unexpected_error_in_compare_is_not_exit_1(tmp_path, monkeypatch):
    from benchmark.cli import report_commands

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(report_commands, "compare_results", broken)
    side = write_side(tmp_path / "side", runs(1))
    outcome = CliRunner().invoke(app, ["compare", str(side), str(side)])
    assert outcome.exit_code == 70
    assert "internal error" in outcome.stderr and "Traceback" not in outcome.output


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path, command):
    """The symptom: `mmbench report | head -1` exited 1 (click's answer to a broken pipe). Now report exits 0
    and says nothing; compare keeps its verdict's exit code (here 0: the same store on both sides)."""
    import subprocess
    import sys

    store = write_side(tmp_path / "store", runs(1) + runs(3, method="iisan"))
    arguments = ["report", "--results", str(store)] if command == "report" else ["compare", str(store), str(store)]
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the program has started: its first write meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "Broken pipe" not in stderr and "Exception ignored" not in stderr
