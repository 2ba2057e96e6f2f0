from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest
import torch

from benchmark.errors import MeasurementNotReadyError
from benchmark.profile.memory import RssSampler, choose_peak_memory, torch_peaks_gib
from benchmark.profile.nvml import NvmlDevice, NvmlSampler
from benchmark.profile.step_timing import StepTiming, StepWork
from benchmark.profile.timers import StepClock, single_epoch_without_warmup, summarize_ms
from benchmark.profile.training import TrainingTrackers


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


def test_training_trackers_leave_evaluation_energy_out():
    trackers = TrainingTrackers(torch.device("cpu"), NvmlDevice(FakeEnergyNvml(), "h", "gpu"), nvml_hz=200)
    with trackers:
        trackers.energy.begin()
        with trackers.evaluation():
            pass
    memory, energy, _ = trackers.measurements
    columns = {**memory.columns(), **energy.columns()}
    assert columns["energy_j_measured"] == pytest.approx((5000 - 1000 + 10000 - 9000) / 1000)
    assert columns["nvml_peak_process_gib"] is not None and columns["peak_mem_source"] == "nvml_process"
    evaluation = trackers.evaluation_memory.measurement
    assert evaluation.eval_peak_rss_gib is not None and evaluation.eval_peak_alloc_gib is None  # no CUDA here


def test_training_trackers_on_cpu_have_no_energy():
    trackers = TrainingTrackers(torch.device("cpu"), None, nvml_hz=200)
    with trackers:
        trackers.energy.begin()
    memory, energy, contention = trackers.measurements
    columns = {**memory.columns(), **energy.columns()}
    assert columns["energy_j_measured"] is None and columns["nvml_samples"] is None
    assert columns["peak_mem_source"] == "cpu_rss" and columns["torch_peak_reserved_gib"] is None
    assert contention.other_gpu_processes is None  # no NVML: unknown, not 0
    assert trackers.evaluation_memory.measurement.eval_peak_rss_gib is None  # no evaluation ran


def test_a_tracker_is_read_after_its_block_and_measures_a_block_that_raised():
    trackers = TrainingTrackers(torch.device("cpu"), None, nvml_hz=200)
    with pytest.raises(MeasurementNotReadyError, match="MemoryTracker"):
        _ = trackers.memory.measurement
    with pytest.raises(RuntimeError, match="the cell failed"), trackers:
        raise RuntimeError("the cell failed")
    memory, _, _ = trackers.measurements
    assert memory.cpu_peak_rss_gib is not None and memory.cpu_peak_rss_gib > 0


def _work(items: int) -> StepWork:
    return StepWork(sequences=2, items_encoded=items, real_items=items - 1, tokens=None)


def test_step_timing_keeps_warmup_compile_and_measured_steps_apart(monkeypatch):
    clock = iter([0.0, 10.0, 11.5, 12.0, 20.0, 30.0])  # epoch 1: start, untimed from/to, end; epoch 2: start, end
    monkeypatch.setattr("benchmark.profile.step_timing.time.perf_counter", lambda: next(clock))
    timing = StepTiming(torch.device("cpu"), steps_per_epoch=2, num_workers=0)
    with timing:
        with timing.epoch() as first:
            timing.warmup_step(100.0, loss=3.0)
            with timing.untimed():
                pass
            timing.compile_step(loss=2.5)
            first.waited_s = 0.25
        with timing.epoch() as second:
            timing.measured_step(40.0, 5.0, 2.0, _work(8))
            timing.measured_step(60.0, 7.0, 1.0, _work(12))
            second.waited_s = 0.5
    measured = timing.measurement
    assert measured.warmup_ms == [100.0] and measured.step_ms == [40.0, 60.0] and measured.measured_steps == 2
    assert measured.train_loss == [3.0, 2.5, 2.0, 1.0] and measured.final_loss == 1.0
    assert measured.epoch_s_samples == [10.5, 10.0]  # the first epoch without its 1.5 s of untimed counting
    assert measured.epoch_s == 10.0 and measured.epoch_kind == "measured" and measured.data_wait_s_per_epoch == 0.5
    assert measured.epochs_trained == 2.0 and measured.samples_per_s == pytest.approx(4 / 0.1)
    assert measured.items_per_s == pytest.approx(18 / 0.1) and measured.tokens_per_s is None
    assert timing.train_s == 20.5


def test_a_cut_or_failed_epoch_is_no_epoch_sample():
    timing = StepTiming(torch.device("cpu"), steps_per_epoch=4, num_workers=0)
    with timing:
        with timing.epoch() as cut:
            timing.measured_step(40.0, 1.0, 2.0, StepWork(1, 4, 4, tokens=16))
            cut.complete = False
        with pytest.raises(RuntimeError), timing.epoch():
            raise RuntimeError("out of memory")
    measured = timing.measurement
    assert measured.epoch_s_samples == [] and measured.epochs_run == 0
    assert measured.epoch_kind == "estimated" and measured.epoch_s == pytest.approx((40.0 + 1.0) * 4 / 1000)
    assert measured.tokens_per_s == pytest.approx(16 / 0.04)


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
