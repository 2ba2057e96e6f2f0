"""The launchers: a local GPU pool (fake devices, fake NVML), SLURM through submitit's local executor,
and `mmbench status` over what they leave."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.launch import devices, local
from benchmark.results.read import read_results

# A stand-in cell program: says which device it was given, holds it a moment, writes a minimal row.
FAKE_CELL = textwrap.dedent(
    """
    import datetime as dt, json, os, sys, time
    from benchmark.results.schema import empty_row
    from benchmark.results.store import write_row
    from benchmark.progress import done
    config = json.load(open(sys.argv[1]))
    if config["method"]["name"] == "lora" and config["seed"] == 0:
        os._exit(7)  # this cell crashes: its device must take the next cell
    row = empty_row()
    started = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.6)
    row.update(cell_id=config["cell_id"], run_id=sys.argv[3], status="ok", config_hash="x",
               assigned_device=os.environ.get("MMBENCH_ASSIGNED_DEVICE"), launcher=os.environ.get("MMBENCH_LAUNCHER"),
               error=os.environ.get("CUDA_VISIBLE_DEVICES"), start_time=started,
               end_time=dt.datetime.now(dt.timezone.utc))
    write_row(__import__("pathlib").Path(sys.argv[2]), row)
    print(done("ok", None).to_json(), flush=True)
    """
)


class FakeNvml:
    """Three GPUs as NVML would list them."""

    def nvmlDeviceGetCount(self) -> int:
        return 3

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-0000000{handle}-fake-uuid"

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "Fake H100"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=(80 if handle else 24) * 2**30)  # GPU 0 is the small one


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def no_overlap_per_device(rows: pl.DataFrame) -> None:
    for device, group in rows.group_by("assigned_device"):
        spans = sorted(zip(group["start_time"], group["end_time"]))
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end <= start, f"two cells at once on {device}"


def test_pool_pins_each_cell_to_one_fake_gpu_by_uuid_one_at_a_time(monkeypatch, tmp_path, write_suite):
    script = tmp_path / "fake_cell.py"
    script.write_text(FAKE_CELL)
    monkeypatch.setattr(local, "CELL_COMMAND", [sys.executable, str(script)])
    monkeypatch.setattr(devices, "open_nvml", FakeNvml)  # the parent's NVML sees three GPUs
    suite = write_suite(methods="[fft, lora, adapter, bitfit]").read_text().replace("seeds: [0]", "seeds: [0, 1, 2]")
    path = tmp_path / "pool.yaml"
    path.write_text(suite)
    outcome = CliRunner().invoke(
        app, ["run", str(path), "--launcher", "pool", "--gpus", "all", "--results", str(tmp_path / "r"), "--json"]
    )
    assert outcome.exit_code == 1, outcome.output  # one cell crashed (on purpose)
    statuses = {cell["cell_id"]: cell["status"] for cell in json.loads(outcome.stdout)["cells"]}
    assert len(statuses) == 12 and list(statuses.values()).count("crashed") == 1
    rows, _ = read_results(tmp_path / "r")
    assert rows.height == 12  # every cell has a row, the crashed one too
    ok = rows.filter(pl.col("status") == "ok")
    uuids = {f"GPU-0000000{index}-fake-uuid" for index in range(3)}
    assert set(ok["error"]) == uuids  # CUDA_VISIBLE_DEVICES: one UUID per cell, all three used
    assert set(ok["assigned_device"]) == {f"gpu{index} (Fake H100)" for index in range(3)}
    assert set(ok["launcher"]) == {"pool"}
    no_overlap_per_device(ok)
    crashed = rows.filter(pl.col("status") == "crashed").row(0, named=True)
    assert crashed["assigned_device"] in set(ok["assigned_device"]) and crashed["launcher"] == "pool"


def test_gpus_selection_by_index_and_its_errors():
    chosen = devices.pool_devices("2,0", FakeNvml())
    assert [d.visible for d in chosen] == ["GPU-00000002-fake-uuid", "GPU-00000000-fake-uuid"]
    assert chosen[0].lock_key == "cuda-GPU-00000002-fake-uuid"
    with pytest.raises(devices.DeviceSelectionError, match="has GPUs 0, 1, 2"):
        devices.pool_devices("0,5", FakeNvml())
    with pytest.raises(devices.DeviceSelectionError, match="fake:N takes a positive number"):
        devices.pool_devices("fake:0")
    assert [d.label for d in devices.pool_devices("fake:2")] == ["fake0", "fake1"]


@pytest.mark.slow  # four real cells in subprocesses on two fake devices (35 s): CI runs it with the slow tests
def test_pool_with_fake_devices_runs_real_cells_and_status_shows_the_run(tmp_path, write_suite):
    # The smoke path: real cells (a cached one too, its cache built once before the fan-out).
    suite = write_suite(methods="[lora, iisan_cached]", evaluate=False)
    suite.write_text(suite.read_text().replace("seeds: [0]", "seeds: [0]\nrepeats: 2"))
    outcome = CliRunner().invoke(
        app, ["run", str(suite), "--launcher", "pool", "--gpus", "fake:2", "--results", str(tmp_path / "r"), "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    rows, _ = read_results(tmp_path / "r")
    assert rows.height == 4 and set(rows["status"]) == {"ok"}
    assert set(rows["assigned_device"]) <= {"fake0", "fake1"} and set(rows["launcher"]) == {"pool"}
    no_overlap_per_device(rows)
    cached = rows.filter(pl.col("method") == "iisan_cached")
    assert set(cached["cache_origin"]) == {"reused"}  # built before the fan-out, by neither cell
    run_dir = Path(json.loads(outcome.stdout)["run_dir"])
    status = CliRunner().invoke(app, ["status", str(run_dir), "--json"])
    assert status.exit_code == 0, status.output
    assert [cell["state"] for cell in json.loads(status.stdout)["cells"]] == ["done"] * 4


@pytest.mark.slow  # real cells in subprocesses (15-20 s): CI runs it with the slow tests
def test_slurm_launcher_with_the_local_executor_runs_the_suite(tmp_path, write_suite):
    pytest.importorskip("submitit")
    suite = write_suite(methods="[fft, lora]", evaluate=False)
    outcome = CliRunner().invoke(
        app,
        [
            "run",
            str(suite),
            "--launcher",
            "slurm",
            "--launcher-option",
            "cluster=local",
            "--results",
            str(tmp_path / "r"),
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    rows, _ = read_results(tmp_path / "r")
    assert rows.height == 2 and set(rows["status"]) == {"ok"} and set(rows["launcher"]) == {"slurm"}
    assert rows["slurm_job_id"].null_count() == 0 and rows["node"].null_count() == 0
    # The nodes' devices are not known where the array is submitted: no prediction, said so.
    assert rows["predicted_on"].null_count() == 2 and "cells not predicted: the slurm launcher" in outcome.stderr
    run_dir = Path(json.loads(outcome.stdout)["run_dir"])
    status = json.loads(CliRunner().invoke(app, ["status", str(run_dir), "--json"]).stdout)
    assert {cell["state"] for cell in status["cells"]} == {"done"}
    assert {cell["job_id"] for cell in status["cells"]} == set(rows["slurm_job_id"].str.split("_").list.first())


@pytest.mark.slow
def test_a_slurm_task_killed_mid_cell_is_stopped_in_status_and_resumed_by_run(tmp_path, write_suite):
    pytest.importorskip("submitit")
    from benchmark.launch.slurm import submit_cells
    from benchmark.plan.loader import load_suite
    from benchmark.results.manifest import new_manifest
    from benchmark.suite.config import SlurmConfig
    from benchmark.suite.matrix import expand_cells

    suite = write_suite(methods="[fft, lora]", max_steps=150, evaluate=False)
    suite.write_text(suite.read_text().replace("epochs: 1", "epochs: 50"))  # the fft cell runs for a while
    cells = expand_cells(load_suite(suite))
    run_dir = tmp_path / "r" / "tiny-killed"
    run_dir.mkdir(parents=True)
    manifest = new_manifest(cells, "tiny-killed", "tiny", "slurm")
    array = submit_cells(cells, run_dir, "tiny-killed", SlurmConfig(cluster="local"), manifest)
    fft_job = array.jobs[cells[0].cell_id]
    tasks: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the fft task's cell process trains
        tasks = children_of(int(fft_job.job_id))  # submitit's local controller runs the task as its child
        cell_processes = [p for task in tasks for p in children_of(task) if "cell_main" in command_line(p)]
        if cell_processes:
            break
        time.sleep(0.2)
    time.sleep(3)  # mid-cell
    for task in tasks:
        os.kill(task, signal.SIGKILL)  # the node dies under the task
    for job in array.jobs.values():
        while not job.done():
            time.sleep(0.2)
    status = json.loads(CliRunner().invoke(app, ["status", str(run_dir), "--json"]).stdout)
    states = {cell["cell_id"]: cell["state"] for cell in status["cells"]}
    assert states[cells[0].cell_id] == "stopped" and states[cells[1].cell_id] == "done"
    resumed = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "r"), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert [cell["cell_id"] for cell in json.loads(resumed.stdout)["cells"]] == [cells[0].cell_id]


def test_slurm_without_submitit_is_one_clear_error(monkeypatch, write_suite):
    monkeypatch.setitem(sys.modules, "submitit", None)
    outcome = CliRunner().invoke(app, ["run", str(write_suite()), "--launcher", "slurm"])
    assert outcome.exit_code == 2 and "pip install 'mmbench[slurm]'" in outcome.stderr


def test_a_cell_knows_from_planning_whether_it_trains_from_a_cache(write_suite):
    # Before: the launcher looked each cell's method up by name to decide whether to build caches first. Planning
    # resolves it once, and the launcher reads `Cell.uses_cache`.
    from benchmark.plan.cells import planned_cells
    from benchmark.plan.loader import load_suite

    cells = planned_cells(load_suite(write_suite("[fft, iisan_cached]")))
    assert {cell.config.method.name: cell.uses_cache for cell in cells} == {"fft": False, "iisan_cached": True}
