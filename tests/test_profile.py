from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
import torch

from benchmark.profile.memory import RssSampler, choose_peak_memory, torch_peaks_gib
from benchmark.profile.nvml import NvmlDevice, NvmlSampler
from benchmark.profile.timers import StepClock, single_epoch_without_warmup, summarize_ms
from benchmark.profile.training import TrainingProfiler


class FakeNvml:
    """Stands in for pynvml: memory rises then falls, our PID among others."""

    def __init__(self, pid):
        self.pid = pid
        self.readings = iter([100, 300, 200] + [150] * 10_000)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        used = next(self.readings)
        return [
            SimpleNamespace(pid=self.pid + 1, usedGpuMemory=10**12),
            SimpleNamespace(pid=self.pid, usedGpuMemory=used),
        ]

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=5000)


def test_sampler_keeps_this_process_peak_and_rate():
    sampler = NvmlSampler(FakeNvml(4242), handle="h", hz=400, pid=4242)
    sampler.start()
    time.sleep(0.2)
    sampler.stop()
    assert sampler.process_peak_bytes == 300  # the other process's terabyte is not ours
    assert sampler.device_peak_bytes == 5000
    assert sampler.samples >= 20 and sampler.achieved_hz > 100


def test_paused_sampler_takes_no_samples():
    sampler = NvmlSampler(FakeNvml(7), handle="h", hz=400, pid=7)
    sampler.start()
    time.sleep(0.05)
    sampler.pause()
    paused_at = sampler.samples
    time.sleep(0.15)
    assert sampler.samples == paused_at
    sampler.resume()
    time.sleep(0.05)
    sampler.stop()
    assert sampler.samples > paused_at and sampler.achieved_hz > 100  # the rate counts active time only


def test_sampler_without_nvml_reports_none_not_zero():
    sampler = NvmlSampler(None, None)
    sampler.start()
    sampler.stop()
    assert not sampler.available
    assert sampler.process_peak_bytes is None and sampler.device_peak_bytes is None and sampler.achieved_hz is None


def test_process_missing_from_nvml_list_stays_none():
    fake = FakeNvml(1)
    sampler = NvmlSampler(fake, handle="h", hz=100, pid=999)
    sampler.sample_once()
    assert sampler.process_peak_bytes is None and sampler.device_peak_bytes == 5000


class FakeEnergyNvml(FakeNvml):
    def __init__(self):
        super().__init__(os.getpid())
        self.energy = iter([1000, 5000, 9000, 10000])  # begin, pause (eval starts), resume, stop

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return next(self.energy)


def test_training_profiler_excludes_evaluation_energy():
    profiler = TrainingProfiler(torch.device("cpu"), NvmlDevice(FakeEnergyNvml(), "h", "gpu"), nvml_hz=200)
    profiler.start()
    profiler.begin_energy()
    profiler.pause()
    profiler.resume()
    memory, energy, _ = profiler.stop()
    columns = {**memory.columns(), **energy.columns()}
    assert columns["energy_j_measured"] == pytest.approx((5000 - 1000 + 10000 - 9000) / 1000)
    assert columns["nvml_peak_process_gib"] is not None and columns["peak_mem_source"] == "nvml_process"


def test_training_profiler_on_cpu_has_no_energy():
    profiler = TrainingProfiler(torch.device("cpu"), None, nvml_hz=200)
    profiler.start()
    profiler.begin_energy()
    memory, energy, _ = profiler.stop()
    columns = {**memory.columns(), **energy.columns()}
    assert columns["energy_j_measured"] is None and columns["nvml_samples"] is None
    assert columns["peak_mem_source"] == "cpu_rss" and columns["torch_peak_reserved_gib"] is None


def test_peak_memory_source_order():
    assert choose_peak_memory(3.0, 2.0, 1.0) == (3.0, "nvml_process")
    assert choose_peak_memory(None, 2.0, 1.0) == (2.0, "torch_reserved")
    assert choose_peak_memory(None, None, 1.0) == (1.0, "cpu_rss")
    assert choose_peak_memory(None, None, None) == (None, "none")


def test_cpu_fallbacks():
    assert torch_peaks_gib(torch.device("cpu")) == (None, None)
    sampler = RssSampler(hz=200)
    sampler.start()
    ballast = bytearray(64 * 1024**2)
    time.sleep(0.05)
    sampler.stop()
    assert sampler.peak_bytes > 64 * 1024**2
    del ballast


def test_step_clock_and_summary():
    with StepClock(torch.device("cpu")) as clock:
        time.sleep(0.01)
    assert clock.elapsed_ms >= 10
    summary = summarize_ms([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary["median"] == 3.0 and summary["p10"] == pytest.approx(1.4) and summary["p90"] == pytest.approx(61.6)
    assert summarize_ms([]) == {"median": None, "p10": None, "p90": None}


def test_single_epoch_excludes_warmup():
    # 10 s epoch whose 2 warm-up steps took 3 s (compilation); a steady step takes 100 ms.
    assert single_epoch_without_warmup(10.0, [2000.0, 1000.0], 100.0) == pytest.approx(7.2)
    assert single_epoch_without_warmup(10.0, [], 100.0) == 10.0
    assert single_epoch_without_warmup(10.0, [2000.0], None) == 10.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nvml_sees_this_process_on_gpu():
    import os

    from benchmark.profile.nvml import nvml_device_for_torch, process_used_bytes

    device = nvml_device_for_torch(0)
    assert device.resolved and device.match in ("gpu", "mig")  # matched by UUID, never a fallback
    nvml, handle = device.nvml, device.handle
    buffer = torch.empty(256 * 1024**2, dtype=torch.uint8, device="cuda")
    used = process_used_bytes(nvml, handle, os.getpid())
    assert used is not None and used >= 256 * 1024**2
    del buffer
