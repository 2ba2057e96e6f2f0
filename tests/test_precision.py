"""Mixed precision runs end to end (CPU autocast here; CUDA autocast and the fp16 grad scaler on a GPU)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.plan.loader import load_suite
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import expand_cells
from benchmark.train.loop import run_cell
from benchmark.train.precision import autocast_factory, grad_scaler


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cell_trains_under_autocast(write_suite, precision):
    # fp16 with device cpu is refused by validation; with device auto on a machine without CUDA it runs, with a warning.
    device = "cuda" if torch.cuda.is_available() else "auto" if precision == "fp16" else "cpu"
    overrides = [f"train.precision={precision}", f"train.device={device}"]
    cell = expand_cells(load_suite(write_suite(methods="[lora]", max_steps=3, evaluate=True), overrides))[0]
    row = empty_row()
    events = []
    run_cell(cell.config, row, events.append)
    assert row["measured_steps"] == 2 and all(math.isfinite(loss) for loss in row["train_loss"])
    assert 0 <= row["test_hr@10"] <= 1
    assert [e.step for e in events if e.kind == "step"] == [1, 2, 3]
    emulated = [warning for warning in row["warnings"] if "emulated half precision" in warning]
    assert len(emulated) == (1 if precision == "fp16" and not torch.cuda.is_available() else 0)


def test_autocast_dtype_and_scaler_choice():
    with autocast_factory("bf16", torch.device("cpu"))():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_factory("fp32", torch.device("cpu"))():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert grad_scaler("fp16", torch.device("cpu")) is None and grad_scaler("bf16", torch.device("cpu")) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_cell_records_gpu_memory(write_suite):
    cell = expand_cells(
        load_suite(write_suite(methods="[lora]", max_steps=4), ["train.precision=fp16", "train.device=cuda"])
    )[0]
    row = empty_row()
    run_cell(cell.config, row, lambda message: None)
    assert row["torch_peak_reserved_gib"] > 0 and row["peak_mem_source"] in ("nvml_process", "torch_reserved")
    assert grad_scaler("fp16", torch.device("cuda")) is not None


def test_validation_schedule_and_early_stopping(write_suite):
    # lr 0: validation never improves after the first epoch, so patience 1 stops training after epoch 2.
    overrides = ["train.max_steps=null", "train.epochs=5", "train.lr=0", "eval.every=1", "eval.patience=1"]
    cell = expand_cells(load_suite(write_suite(methods="[bitfit]"), overrides))[0]
    row = empty_row()
    phases = []
    run_cell(cell.config, row, lambda event: phases.append(event.phase))
    assert row["stopped_early"] is True and row["best_epoch"] == 1 and row["epochs_run"] == 2
    assert [p for p in phases if p and p.startswith("validate")] == ["validate (epoch 1)", "validate (epoch 2)"]
    assert row["eval_s"] > 0 and len(row["epoch_s_samples"]) == 2
    for prefix in ("valid", "test", "pop_test", "random_test"):
        assert 0 <= row[f"{prefix}_ndcg@10"] <= row[f"{prefix}_hr@10"] <= 1, prefix
