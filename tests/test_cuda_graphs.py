"""CUDA graphs as an axis: `train.compile_mode: reduce-overhead` (or the cudagraphs backend) captures the compiled
step; validated before anything runs, refused with a reason where there is no CUDA device, its own row."""

from __future__ import annotations

import pytest
import torch

from benchmark.errors import SuiteError
from benchmark.plan.loader import load_suite
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import config_id, expand_cells
from benchmark.train import compile as compile_module
from benchmark.train.loop import run_cell

CACHED = "[{name: iisan_cached, options: {layer_stride: 1}}]"


def _suite(write_suite, extra: str, device: str = "cpu", warmup: int = 1):
    text = write_suite(methods=CACHED, max_steps=6).read_text()
    text = text.replace("  device: cpu\n", f"  device: {device}\n{extra}").replace(
        "  warmup_steps: 1\n", f"  warmup_steps: {warmup}\n"
    )
    return write_suite(text=text)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  compile: true\n  compile_mode: reduce-overhead\n", "needs device cuda"),
        ("  compile: true\n  compile_mode: max-autotune\n  compile_backend: aot_eager\n", "inductor's"),
        ("  compile: true\n  compile_mode: reduce-overhead\n  step_shapes: dynamic\n", "static or bucketed"),
    ],
)
def test_cuda_graph_settings_that_cannot_work_are_refused_before_anything_runs(write_suite, extra, expected):
    with pytest.raises(SuiteError) as caught:
        load_suite(_suite(write_suite, extra, warmup=3))
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_cuda_graphs_need_warmup_steps_for_their_recording(write_suite):
    with pytest.raises(SuiteError) as caught:
        load_suite(_suite(write_suite, "  compile: true\n  compile_mode: reduce-overhead\n", device="auto", warmup=2))
    assert any("warmup_steps must be at least 3" in problem for problem in caught.value.problems)


@pytest.mark.parametrize(("backend", "mode"), [("inductor", "reduce-overhead"), ("cudagraphs", "default")])
def test_without_a_cuda_device_cuda_graphs_fall_back_to_eager_and_say_why(backend, mode):
    loss = compile_module.CompiledLoss(lambda x: x * 2, True, backend, torch.device("cpu"), mode)
    assert not loss.active and "need a CUDA device" in loss.fallback
    assert loss(3) == 6
    figures = loss.figures(1.0)
    assert figures.compiled is False and figures.cuda_graphs is False and figures.compile_mode == mode


def test_the_compile_mode_is_its_own_configuration(write_suite):
    eager = expand_cells(load_suite(_suite(write_suite, "", device="auto", warmup=3)))[0].config
    graphs = expand_cells(
        load_suite(_suite(write_suite, "  compile: true\n  compile_mode: reduce-overhead\n", "auto", 3))
    )[0].config
    assert config_id(eager) != config_id(graphs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cached_cell_replays_cuda_graphs(write_suite):
    from benchmark.train.hidden_state_build import ensure_cell_caches

    suite = _suite(write_suite, "  compile: true\n  compile_mode: reduce-overhead\n  precision: bf16\n", "cuda", 3)
    cell = expand_cells(load_suite(suite))[0]
    ensure_cell_caches(cell.config, lambda message: None)
    row = empty_row()
    run_cell(cell.config, row, lambda message: None)
    assert row["compiled"] is True and row["cuda_graphs"] is True, row["warnings"]
    assert row["measured_steps"] >= 1 and row["compile_steps"] >= 1
