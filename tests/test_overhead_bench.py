"""The harness-overhead benchmark: an independent plain loop per method, and the runner comparing it with mmbench."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.overhead import plain_loop, plain_model, plain_towers
from benchmark.methods.registry import get_method_class
from benchmark.modalities.registry import modality_names
from benchmark.models.towers import build_tower, count_parameters
from benchmark.plan.loader import load_suite
from benchmark.suite.matrix import expand_cells
from benchmark.train.recommender import Recommender
from tests.conftest import ROOT

PLAIN_MODULES = ("plain_loop", "plain_model", "plain_towers")


@pytest.mark.parametrize("name", PLAIN_MODULES)
def test_the_plain_loop_imports_nothing_of_mmbench(name):
    """The plain loop's modules import one another and nothing else of mmbench."""
    tree = ast.parse((ROOT / f"bench/overhead/{name}.py").read_text())
    modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    modules += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    own = {f"bench.overhead.{module}" for module in PLAIN_MODULES}
    assert modules and not [module for module in modules if module.startswith("benchmark") and module not in own]


def _mmbench_trainable(config) -> int:
    towers = {m: build_tower(m, tower, config.seed) for m, tower in config.towers.present(modality_names()).items()}
    encoder = get_method_class(config.method.name)(config.method.options).build_item_encoder(towers, 64)
    train = config.train
    model = Recommender(encoder, 64, train.max_seq_len, train.user_layers, train.user_heads, train.dropout)
    return count_parameters(model)[0]


@pytest.mark.parametrize("suite", ["suites/overhead-tiny.yaml", "suites/overhead-paper.yaml"])
def test_every_plain_method_trains_as_many_parameters_as_mmbench(suite):
    """Two implementations written apart, one count: a method that drifted from its description would differ."""
    for cell in expand_cells(load_suite(ROOT / suite)):
        if suite.endswith("paper.yaml") and not cell.config.method.name.endswith("_cached"):
            continue  # paper-scale towers: the cached methods build the same side networks without them
        plain, _ = plain_model.build_model(cell.config.to_dict())
        ours = sum(p.numel() for p in plain.parameters() if p.requires_grad)
        assert ours == _mmbench_trainable(cell.config), cell.cell_id


def test_the_plain_loop_refuses_what_it_does_not_cover():
    cell = expand_cells(load_suite(ROOT / "suites/overhead-tiny.yaml"))[0].config.to_dict()
    cell["train"]["step_shapes"] = "dynamic"
    with pytest.raises(plain_towers.Unsupported, match="static step shapes"):
        plain_model.build_model(cell)


def test_the_plain_loop_trains(tmp_path):
    cell = next(
        c for c in expand_cells(load_suite(ROOT / "suites/overhead-tiny.yaml")) if c.config.method.name == "crossan"
    )
    result = plain_loop.run(cell.config.to_dict(), torch.device("cpu"), warmup=1, steps=2)
    assert result["finite"] and len(result["step_ms"]) == 2 and len(result["losses"]) == 3


@pytest.mark.slow
def test_the_benchmark_compares_a_cell_with_its_plain_loop(tmp_path, write_suite):
    text = (ROOT / "suites/overhead-tiny.yaml").read_text()
    text = (
        text.replace("users: 800", "users: 96")
        .replace("max_steps: 48", "max_steps: 5")
        .replace("warmup_steps: 8", "warmup_steps: 2")
    )
    suite = write_suite(text=text)
    out = tmp_path / "overhead.json"
    command = [sys.executable, "-m", "bench.overhead", str(suite), "--only", "*/iisan_cached/*", "--rounds", "1"]
    command += ["--results", str(tmp_path / "results"), "--out", str(out), "--json"]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    figures = json.loads(finished.stdout)["figures"]
    assert [f["method"] for f in figures] == ["iisan_cached"]
    figure = figures[0]
    assert figure["params_match"] and figure["mmbench_params"] == 287_177
    assert figure["mmbench_syncs"] == 0 and figure["mmbench_kernels"] > 100 and figure["plain_kernels"] > 100
    assert len(figure["round_ratios"]) == 1 and figure["ratio"] > 0
    raw = json.loads(out.read_text())["raw"][figure["cell_id"]]
    assert len(raw["mmbench"]["step_ms"]) == 3 and len(raw["plain"]["step_ms"]) == 3  # raw samples kept
    assert Path(tmp_path / "results").is_dir()


def test_the_comparison_reports_ratio_rounds_and_disagreements():
    from bench.overhead.__main__ import Comparison, Side, render

    comparison = Comparison("d/t/iisan/seed=0", "iisan")
    comparison.mmbench = Side([11.0, 12.0, 13.0, 24.0], [12.0, 24.0], 300, 0, "", 1000)
    comparison.plain = Side([10.0, 10.0, 10.0, 20.0], [10.0, 20.0], 480, 1, "_local_scalar_dense x1", 1001)
    figures = comparison.figures("cpu")
    assert figures["ratio"] == pytest.approx(1.2) and figures["round_ratios"] == [1.2, 1.2]  # paired by round
    assert (figures["mmbench_ms"], figures["plain_ms"]) == (12.5, 10.0)
    assert not figures["within_target"] and figures["target"] == 1.10 and not figures["params_match"]
    table = render([figures], "cpu")
    assert "1.200 (> 1.10) [1.20, 1.20]" in table and "300 / 480" in table and "1,000 / 1,001 DIFFER" in table
