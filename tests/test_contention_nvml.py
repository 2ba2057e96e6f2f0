"""Contention is recorded and flagged, one run times a device at a time, NVML finds the right device or none."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from types import SimpleNamespace

import polars as pl
import pytest

from benchmark.analysis.leaderboard import build_leaderboard
from benchmark.launch import local
from benchmark.launch.device_lock import device_keys, device_lock
from benchmark.plan.loader import load_suite
from benchmark.profile import contention
from benchmark.profile.contention import ContentionMonitor, judge
from benchmark.profile.nvml import NvmlSampler, resolve_nvml_device
from benchmark.results.read import read_results
from benchmark.suite.matrix import expand_cells


def test_other_cpu_work_marks_a_cpu_cell_contended(monkeypatch):
    # Fake clocks: over 2 s of wall time the machine was busy 3.2 core-seconds, this process 1.0 -> 1.1 other cores.
    readings = {"wall": iter([10.0, 12.0]), "machine": iter([100.0, 103.2]), "own": iter([50.0, 51.0])}
    monkeypatch.setattr(contention.time, "perf_counter", lambda: next(readings["wall"]))
    monkeypatch.setattr(contention, "_machine_busy_seconds", lambda: next(readings["machine"]))
    monkeypatch.setattr(contention, "_own_cpu_seconds", lambda root: next(readings["own"]))
    monitor = ContentionMonitor()
    monitor.start()
    result = monitor.stop(None, cpu_cell=True)
    assert result.other_busy_cores == pytest.approx(1.1) and result.contended
    assert "1.10 CPU cores" in result.reason


def test_quiet_machine_and_gpu_rules():
    quiet = judge(0.05, 0.3, None, cpu_cell=True)
    assert not quiet.contended and quiet.reason is None
    # A GPU cell is judged by other processes on its GPU, not by the busy cores of a big host.
    assert not judge(3.0, 5.0, set(), cpu_cell=False).contended
    shared = judge(0.0, 0.1, {4242}, cpu_cell=False)
    assert shared.contended and shared.other_gpu_processes == 1 and "4242" in shared.reason


def test_nvml_sampler_sees_other_processes_on_the_gpu():
    class TwoProcesses:
        def nvmlDeviceGetComputeRunningProcesses(self, handle):
            return [SimpleNamespace(pid=1, usedGpuMemory=100), SimpleNamespace(pid=77, usedGpuMemory=9)]

        def nvmlDeviceGetMemoryInfo(self, handle):
            return SimpleNamespace(used=109)

    sampler = NvmlSampler(TwoProcesses(), "h", pid=1)
    sampler.sample_once()
    assert sampler.other_pids == {77} and sampler.process_peak_bytes == 100


class FakeNvml:
    """Two physical GPUs; the second is in MIG mode with two slices."""

    class NotFound(Exception):
        pass

    uuids = {"gpu0": "GPU-aaaa", "gpu1": "GPU-bbbb", "mig0": "MIG-cccc", "mig1": "MIG-dddd"}

    def __init__(self, by_uuid_knows_mig: bool = True):
        self.by_uuid_knows_mig = by_uuid_knows_mig

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for handle, known in self.uuids.items():
            if known == uuid and (self.by_uuid_knows_mig or handle.startswith("gpu")):
                return handle
        raise self.NotFound(uuid)

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetUUID(self, handle):
        return self.uuids[handle].encode()

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        if handle == "gpu0":
            raise self.NotFound("not MIG capable")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, slot):
        if slot > 1:
            raise self.NotFound("empty slot")
        return f"mig{slot}"


def test_nvml_resolves_whole_gpus_and_mig_slices_by_uuid():
    whole = resolve_nvml_device(FakeNvml(), "bbbb")
    assert whole.handle == "gpu1" and whole.match == "gpu" and whole.energy_available
    mig = resolve_nvml_device(FakeNvml(), "dddd")
    assert mig.handle == "mig1" and mig.match == "mig" and not mig.energy_available  # the counter is the whole GPU's
    walked = resolve_nvml_device(FakeNvml(by_uuid_knows_mig=False), "MIG-cccc")
    assert walked.handle == "mig0" and walked.match == "mig"


def test_an_unidentified_device_gets_no_handle_never_index_0():
    unknown = resolve_nvml_device(FakeNvml(), "eeee")
    assert unknown.handle is None and not unknown.resolved and not unknown.energy_available
    assert unknown.match.startswith("unresolved:") and "eeee" in unknown.match


def test_energy_is_not_read_on_a_mig_slice():
    import torch

    from benchmark.profile.energy_tracker import EnergyTracker
    from benchmark.profile.nvml import NvmlDevice

    class Counter(FakeNvml):
        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            return 1000

    with EnergyTracker(torch.device("cpu"), NvmlDevice(Counter(), "mig0", "mig")) as energy:
        energy.begin()
        assert energy.measuring is False
    assert energy.measurement.energy_j_measured is None


def test_device_keys(monkeypatch, write_suite):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1234/5,2")
    config = expand_cells(load_suite(write_suite()))[0].config
    assert device_keys(config) == ["cpu"]
    cuda = dataclasses.replace(config.train, device="cuda")
    assert device_keys(config.replace(train=cuda)) == ["cuda-MIG-1234_5"]
    # a distributed cell times on (and locks) one device per rank
    two_ranks = dataclasses.replace(cuda, distributed="ddp", nproc_per_node=2)
    assert device_keys(config.replace(train=two_ranks)) == ["cuda-MIG-1234_5", "cuda-2"]


def test_a_second_run_waits_for_the_device(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_LOCK_DIR", str(tmp_path))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
                "print('held', flush=True); time.sleep(1.5)"
            ),
            str(tmp_path / "cpu.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    messages = []
    started = time.monotonic()
    with device_lock("cpu", messages.append):
        waited = time.monotonic() - started
    holder.wait()
    assert waited >= 0.5 and len(messages) == 1 and "another mmbench run is timing a cell" in messages[0]


def test_no_lock_is_written_on_the_row_and_marked(write_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_LOCK_DIR", str(tmp_path / "locks"))
    cell = expand_cells(load_suite(write_suite(methods="[bitfit]", max_steps=2, evaluate=False)))[0]
    outcome = local.run_cell_subprocess(cell, tmp_path / "run", "run-1", lock=False)
    assert outcome.status == "ok", outcome.error
    frame, _ = read_results(tmp_path / "run")
    assert frame["device_lock"].to_list() == ["disabled"]
    assert "unlocked" in build_leaderboard(frame).table.filter(pl.col("method") == "bitfit")["caveats"][0].to_list()


def test_the_default_lock_directory_is_shared_by_every_user(tmp_path, monkeypatch):
    import stat as stat_module

    from benchmark.launch.device_lock import lock_directory

    monkeypatch.delenv("MMBENCH_LOCK_DIR", raising=False)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    directory = lock_directory()
    assert directory == tmp_path / "mmbench-locks" and stat_module.S_IMODE(directory.stat().st_mode) == 0o1777
