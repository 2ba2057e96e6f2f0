"""What one cell records is honest: full cost, memory of training alone, no empty ok rows, data time accounted."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from benchmark.data.hidden_state_store import HiddenStateCache
from benchmark.errors import CacheMissingError, NoMeasuredStepsError, SuiteError
from benchmark.plan.loader import load_suite
from benchmark.profile.environment import hardware_identity
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import expand_cells
from benchmark.train import evaluator, trainer
from benchmark.train.hidden_state_build import cache_origin
from benchmark.train.loop import run_cell

CPU = __import__("torch").device("cpu")


def cell_config(write_suite, methods="[lora]", overrides=(), **suite):
    return expand_cells(load_suite(write_suite(methods=methods, **suite), list(overrides)))[0].config


def test_amortisation_uses_the_epochs_actually_trained():
    import dataclasses

    from benchmark.results.pieces import CacheFacts, CellRecord, Energy, Timing

    timing = Timing(
        steps_per_epoch=10, num_workers=0, step_ms=[5.0] * 20, warmup_ms=[], measured_steps=20, step_ms_median=5.0,
        step_ms_p10=5.0, step_ms_p90=5.0, epoch_s_samples=[0.1, 0.1], epochs_run=2, epochs_trained=2.0,
        data_wait_ms=[], train_loss=[], final_loss=None, stopped_early=True, samples_per_s=None, epoch_s=0.1,
        epoch_kind="measured", data_wait_s_per_epoch=None, data_share=None, items_per_s=None, tokens_per_s=None,
        step_items_median=None,
    )  # fmt: skip
    cache = CacheFacts("built", "[]", 0.468, 1)
    # Early stopping after 2 of 40 epochs: the build is spread over 2 epochs, not the 40 configured (0.106 s before).
    record = CellRecord()
    record.add(timing, cache, Energy(40.0))
    row = record.to_row()
    assert row["epoch_amortized_s"] == pytest.approx(0.334) and row["amortized_over_epochs"] == 2.0
    assert row["energy_j_per_epoch"] == pytest.approx(40.0 / 20 * 10)  # derived at assembly from two pieces
    cut = CellRecord()
    cut.add(dataclasses.replace(timing, epochs_trained=0.25), cache)  # cut inside its first epoch: one whole build
    assert cut.to_row()["epoch_amortized_s"] == pytest.approx(0.568) and cut.to_row()["amortized_over_epochs"] == 1.0
    foreign = CellRecord()
    foreign.add(timing, dataclasses.replace(cache, cache_origin="reused_other_hardware"))
    row = foreign.to_row()
    assert "epoch_amortized_s" not in row and "other hardware" in row["warnings"][0]


def test_cache_origin_says_who_paid_the_build(tmp_path):
    here = hardware_identity(CPU)
    cache = HiddenStateCache(tmp_path / "abc123", {"built_on": here, "build_seconds": 1.0})
    assert cache_origin(cache, {"abc123"}, CPU) == "built"
    assert cache_origin(cache, set(), CPU) == "reused"
    elsewhere = HiddenStateCache(
        tmp_path / "abc123", {"built_on": {**here, "device": "NVIDIA H100"}, "build_seconds": 1.0}
    )
    assert cache_origin(elsewhere, set(), CPU) == "reused_other_hardware"
    unknown = HiddenStateCache(tmp_path / "abc123", {"build_seconds": 1.0})  # built before mmbench recorded hardware
    assert cache_origin(unknown, set(), CPU) == "reused_other_hardware"


def test_the_cell_never_builds_a_cache_itself(write_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "empty-cache"))
    config = cell_config(write_suite, "[{name: iisan_cached, options: {layer_stride: 1}}]")
    with pytest.raises(CacheMissingError, match="builds it in its own process before the cell"):
        run_cell(config, empty_row(), lambda message: None)
    assert not (tmp_path / "empty-cache" / "hidden-states").exists() or not any(
        (tmp_path / "empty-cache" / "hidden-states").iterdir()
    )


def test_evaluation_memory_is_released_before_the_next_training_step(write_suite, monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(
        "benchmark.profile.memory_tracker.release_device_memory", lambda device: events.append("release")
    )
    validate, train_step = evaluator.Evaluator.validate, trainer.Trainer.train_step

    def recording_validate(self, epoch, train_s):
        events.append("validate")
        return validate(self, epoch, train_s)

    def recording_step(self, batch, wait_ms):
        events.append("step")
        return train_step(self, batch, wait_ms)

    monkeypatch.setattr(evaluator.Evaluator, "validate", recording_validate)
    monkeypatch.setattr(trainer.Trainer, "train_step", recording_step)
    config = cell_config(write_suite, "[bitfit]", ["train.max_steps=null", "train.epochs=3", "eval.every=1"])
    row = empty_row()
    run_cell(config, row, lambda message: None)
    validations = [i for i, event in enumerate(events) if event == "validate"]
    assert len(validations) == 3
    for index in validations:
        later = events[index + 1 :]
        steps = [i for i, event in enumerate(later) if event == "step"]
        assert "release" in later[: steps[0]] if steps else "release" in later  # freed before training resumes
    # One point of the learning curve per validation, at the training time so far (evaluation excluded).
    times, scores = row["valid_train_s_curve"], row["valid_ndcg10_curve"]
    assert len(times) == len(scores) == 3 and 0 < times[0] < times[1] < times[2]
    assert row["tta_s"] in times and scores[times.index(row["tta_s"])] >= 0.95 * max(scores)
    assert sum(row["epoch_s_samples"]) == pytest.approx(times[-1])  # the same clock as the epochs
    assert row["eval_peak_rss_gib"] is not None and row["eval_peak_rss_gib"] > 0


def test_a_cell_that_measured_no_step_is_an_error(write_suite):
    # Before: a cell whose steps were all warm-up was recorded ok with step_ms=[]. `validate` refuses such a suite
    # now (tests/test_validate_runtime.py); the cell still refuses to call nothing measured ok.
    config = cell_config(write_suite, "[lora]")
    config = config.replace(train=dataclasses.replace(config.train, warmup_steps=5, max_steps=3))
    row = empty_row()
    with pytest.raises(NoMeasuredStepsError, match="no measured steps: 3 step"):
        run_cell(config, row, lambda message: None)
    assert row["step_ms"] == [] and row["warmup_ms"] and len(row["warmup_ms"]) == 3


def test_batch_larger_than_the_training_set_is_a_validation_error(write_suite):
    path = write_suite(methods="[lora]")
    with pytest.raises(SuiteError) as raised:
        load_suite(path, ["train.batch_size=64"])
    problem = raised.value.problems[0]
    assert problem.startswith(f"{path}:") and "batch_size 64 is larger than the 40 training sequences" in problem
    text = path.read_text().replace("seeds: [0]", "seeds: [0]\nmatrix:\n  train.batch_size: [8, 500]")
    path.write_text(text)
    with pytest.raises(SuiteError, match=r"matrix\.train\.batch_size\[1\]: batch_size 500"):
        load_suite(path)


def test_fp16_on_a_cpu_is_a_validation_error(write_suite):
    path = write_suite(methods="[lora]")
    with pytest.raises(SuiteError, match="train.precision: fp16 on device 'cpu' measures emulated half precision"):
        load_suite(path, ["train.precision=fp16"])


def test_dataloader_workers_change_nothing_but_who_collates(write_suite):
    losses, rows = {}, {}
    for workers in (0, 1):
        config = cell_config(
            write_suite, "[lora]", [f"train.num_workers={workers}", "train.max_steps=4"], evaluate=False
        )
        row = empty_row()
        run_cell(config, row, lambda message: None)
        losses[workers], rows[workers] = row["train_loss"], row
    assert losses[0] == pytest.approx(losses[1])  # same seeded batches, same order
    for workers, row in rows.items():
        assert row["num_workers"] == workers and len(row["data_wait_ms"]) == row["measured_steps"] == 3
        # An estimated epoch costs the wait for batches too, like a measured one.
        per_epoch = row["steps_per_epoch"]
        expected = (np.median(row["step_ms"]) + np.median(row["data_wait_ms"])) * per_epoch / 1000
        assert row["epoch_kind"] == "estimated" and row["epoch_s"] == pytest.approx(expected)
        assert 0 <= row["data_share"] <= 1


def test_default_workers_leave_cpu_cores_to_the_timed_work():
    import torch

    from benchmark.data.loader import default_num_workers

    assert default_num_workers(torch.device("cpu")) == 0
    assert 0 <= default_num_workers(torch.device("cuda", 0)) <= 4


def test_rows_carry_config_id_repeat_and_dropped_sequences(write_suite):
    config = cell_config(write_suite, "[lora]")
    row = empty_row()
    from benchmark.results.cell_row import describe_cell

    describe_cell(config, row)
    run_cell(config, row, lambda message: None)
    assert row["config_id"] and row["config_id"] != row["config_hash"] and row["repeat"] == 0
    assert row["dropped_sequences"] == 0 and json.loads(row["config_json"])["repeat"] == 0
    assert row["contended"] in (True, False) and row["other_busy_cores"] is not None and row["load_avg_1m"] is not None


def test_progress_events_round_trip_and_ignore_stray_lines():
    from benchmark.progress import ProgressEvent, done, phase, step

    for event in (
        phase("train", 12),
        step(3, 12, 0.5),
        done("ok", built=("abc", "def")),
        done("oom", "CUDA out of memory"),
    ):
        assert ProgressEvent.from_json(event.to_json()) == event
    assert ProgressEvent.from_json("Some weights of the model were not initialized\n") is None
    assert ProgressEvent.from_json('{"kind": "nonsense"}') is None and ProgressEvent.from_json("[1, 2]") is None
