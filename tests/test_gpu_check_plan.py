"""`make gpu-check`'s plan: every GPU path in one call, most important first, a stage only if it fits the time left."""

from __future__ import annotations

from pathlib import Path

from bench import gpu_check
from bench.gpu_check import Stage, gpu_stages, run_stages
from benchmark.plan.loader import load_suite
from benchmark.suite.matrix import expand_cells
from tests.conftest import ROOT


def test_stages_run_in_order_and_one_that_cannot_fit_is_skipped_not_cut(monkeypatch):
    clock = iter([0.0, 0.0, 50.0, 95.0, 96.0])
    monkeypatch.setattr(gpu_check.time, "monotonic", lambda: next(clock))
    ran, bundled = [], []
    stages = [
        Stage("a", 40, lambda: ran.append("a") or 0),
        Stage("b", 40, lambda: ran.append("b") or 3),
        Stage("c", 40, lambda: ran.append("c") or 0),  # 100 - 95 = 5 s left: skipped
        Stage("d", 2, lambda: ran.append("d") or 0),
    ]
    code, skipped = run_stages(stages, 100.0, lambda: bundled.append(len(ran)))
    assert ran == ["a", "b", "d"] and skipped == ["c"] and code == 3
    assert bundled == [1, 2, 3]  # what each stage measured is written out before the next starts


def test_the_plan_covers_every_gpu_path(tmp_path):
    stages = gpu_stages(tmp_path / "results", tmp_path / "out")
    names = [stage.name for stage in stages]
    assert names[1] == "harness overhead at paper shapes" and names[-2] == "leaderboard"
    assert names[-1] == "predicted against measured (estimate --check)"  # every cell's prediction beside its figures
    assert any("CUDA graphs" in name for name in names) and any("pool" in name for name in names)
    # one call of at most 8.5 minutes (15 of device time, the machine's start and a partial rerun); an optional stage
    # runs only if earlier ones left it the time
    assert sum(stage.estimate_s for stage in stages if not stage.optional) <= gpu_check.DEFAULT_BUDGET_S <= 8.5 * 60
    assert any("one-rank DDP cell" in name for name in names)  # a distributed cell on one GPU beside the plain one
    for test_file in gpu_check.GPU_TESTS:
        assert "pytest.mark.gpu" in (ROOT / test_file).read_text(), test_file
    # the overhead benchmark's mmbench side is gpu-check's paper slice, every method of it (BitFit included)
    paper = [c for c in expand_cells(load_suite(ROOT / gpu_check.GPU_SUITE)) if "/bert-base+vit-base/" in c.cell_id]
    assert {c.config.method.name for c in paper} >= {"fft", "lora", "adapter", "bitfit", "iisan", "iisan_cached"}
    graphs = expand_cells(load_suite(ROOT / gpu_check.GRAPHS_SUITE))
    assert [c.config.train.compile_mode for c in graphs] == ["default", "reduce-overhead"]
    assert all(c.config.dataset == paper[0].config.dataset for c in graphs)  # the cached cell's cache is reused
    assert Path(ROOT / gpu_check.SMOKE_SUITE).is_file()
    peft = expand_cells(load_suite(ROOT / gpu_check.PEFT_SUITE))
    labels = {c.config.method.label for c in peft}
    assert labels >= {"lora", "dora", "rslora", "ia3", "loha", "lokr", "vera", "oft", "boft"}
    assert all(c.config.dataset == paper[0].config.dataset for c in peft)  # the paper's shapes and data
    qlora = expand_cells(load_suite(ROOT / gpu_check.QLORA_SUITE))
    assert {c.config.method.base_precision for c in qlora} == {None, "nf4", "int8"}
    assert {c.config.method.name for c in qlora} >= {"lora", "peft", "adapter", "iisan_versa"}
    assert all(c.config.dataset == paper[0].config.dataset for c in qlora)
