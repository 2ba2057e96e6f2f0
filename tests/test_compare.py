"""`mmbench compare`: synthetic result sets with known differences, judged figure by figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.compare.verdicts import Thresholds, compare_configuration
from benchmark.results.schema import empty_row
from benchmark.results.store import write_row

GPU = {"gpu_name": "NVIDIA H100 80GB HBM3", "driver_version": "580.95.05", "cuda_version": "13.0"}


def runs(
    seed: int,
    method: str = "lora",
    repeats: int = 3,
    steps: int = 40,
    median_ms: float = 50.0,
    slowdown: float = 1.0,
    memory_gib: float = 10.0,
    memory_jitter: float = 0.0005,
    memory_source: str = "nvml_process",
    trainable: int = 1000,
    status: str = "ok",
    **extra: object,
) -> list[dict]:
    """Rows of one configuration: a run effect (1% spread) and step noise (5%), like a GPU's."""
    generator = np.random.default_rng(seed)
    rows = []
    for repeat in range(repeats):
        run_effect = generator.lognormal(0.0, 0.01)
        samples = median_ms * slowdown * run_effect * generator.lognormal(0.0, 0.05, size=steps)
        row = empty_row()
        row.update(
            suite="regression",
            run_id=f"run-{seed}",
            cell_id=f"synth/tiny/{method}/seed=0/repeat={repeat}",
            config_hash=f"{method}-{repeat}",
            config_id=f"cfg-{method}",
            config_json="{}",
            status=status,
            error="CUDA out of memory" if status == "oom" else None,
            method=method,
            method_label=method,
            trainable_params=trainable if status == "ok" else None,
            total_params=100_000 if status == "ok" else None,
            peak_mem_gib=memory_gib * (1 + generator.uniform(-memory_jitter, memory_jitter))
            if status == "ok"
            else None,
            peak_mem_source=memory_source,
            step_ms=samples.tolist() if status == "ok" else None,
            cpu="x86_64",
            **{**GPU, "torch_version": "2.11.0+cu130", **extra},
        )
        rows.append(row)
    return rows


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None)


def verdicts(baseline: list[dict], current: list[dict], thresholds: Thresholds = Thresholds()) -> dict[str, str]:
    compared = compare_configuration("cell", "cfg", frame(baseline), frame(current), thresholds)
    return {figure.figure: figure.verdict for figure in compared}


def test_an_injected_20_percent_slowdown_is_caught():
    caught = [verdicts(runs(seed), runs(seed + 1000, slowdown=1.2))["step_ms"] for seed in range(20)]
    assert caught == ["regression"] * 20


def test_noise_of_the_same_distribution_is_not_flagged_in_95_of_100_trials():
    flagged = sum(verdicts(runs(seed), runs(seed + 1000))["step_ms"] == "regression" for seed in range(100))
    assert flagged <= 5, flagged


def test_a_small_slowdown_within_the_threshold_is_not_a_regression():
    assert verdicts(runs(1), runs(2, slowdown=1.02))["step_ms"] == "unchanged"


def test_a_20_percent_speedup_is_reported_as_an_improvement():
    assert verdicts(runs(1), runs(2, slowdown=0.8))["step_ms"] == "improvement"


def test_too_few_step_samples_are_inconclusive_not_passed():
    compared = compare_configuration(
        "cell",
        "cfg",
        frame(runs(1, repeats=1, steps=3)),
        frame(runs(2, repeats=1, steps=3, slowdown=1.5)),
        Thresholds(),
    )
    step = next(figure for figure in compared if figure.figure == "step_ms")
    assert step.verdict == "inconclusive" and "too few samples" in step.detail


def test_a_5_percent_memory_growth_is_caught_and_a_1_percent_one_is_not():
    assert verdicts(runs(1), runs(2, memory_gib=10.5))["peak_mem_gib"] == "regression"
    assert verdicts(runs(1), runs(2, memory_gib=10.1))["peak_mem_gib"] == "unchanged"
    assert verdicts(runs(1), runs(2, memory_gib=9.0))["peak_mem_gib"] == "improvement"


def test_memory_that_varies_between_runs_more_than_it_changed_is_inconclusive():
    # A CPU's RSS moves by a few percent between runs of the same code: overlapping runs decide nothing.
    baseline = runs(1, memory_gib=0.47, memory_jitter=0.04, memory_source="cpu_rss")
    current = runs(2, memory_gib=0.485, memory_jitter=0.04, memory_source="cpu_rss")
    baseline[0]["peak_mem_gib"], current[0]["peak_mem_gib"] = 0.49, 0.46  # the runs overlap
    assert verdicts(baseline, current)["peak_mem_gib"] == "inconclusive"


def test_a_trainable_parameter_change_is_a_regression_unless_allowed():
    assert verdicts(runs(1), runs(2, trainable=1001))["trainable_params"] == "regression"
    allowed = verdicts(runs(1), runs(2, trainable=1001), Thresholds(allow_param_change=True))
    assert allowed["trainable_params"] == "changed (allowed)"


def test_a_configuration_that_now_fails_is_a_regression():
    assert verdicts(runs(1), runs(2, status="oom")) == {"status": "regression"}
    assert verdicts(runs(1, status="oom"), runs(2)) == {"status": "improvement"}


def write_side(directory: Path, rows: list[dict]) -> Path:
    for row in rows:
        write_row(directory / f"{row['config_hash']}.parquet", row)
    return directory


def invoke(*arguments: str):
    return CliRunner().invoke(app, ["compare", *arguments])


def test_cli_exit_codes_markdown_and_json(tmp_path):
    baseline = write_side(tmp_path / "baseline", runs(1) + runs(3, method="iisan"))
    same = write_side(tmp_path / "same", runs(2) + runs(4, method="iisan"))
    slower = write_side(tmp_path / "slower", runs(2) + runs(4, method="iisan", slowdown=1.25))

    passed = invoke(str(baseline), str(same))
    assert passed.exit_code == 0, passed.output
    assert "| cell | figure | baseline | current | change | verdict |" in passed.stdout
    assert "PASS" in passed.stdout and "PASS" in passed.stderr

    failed = invoke(str(baseline), str(slower), "--json")
    assert failed.exit_code == 1
    document = json.loads(failed.stdout)
    regressions = [f for f in document["figures"] if f["verdict"] == "regression"]
    assert [(f["cell"], f["figure"]) for f in regressions] == [("synth/tiny/iisan", "step_ms")]
    assert regressions[0]["change"] == pytest.approx(0.25, abs=0.05)
    assert document["figures"][0] == regressions[0]  # regressions first

    assert invoke(str(baseline), str(tmp_path / "nowhere")).exit_code == 2
    one_file = sorted((tmp_path / "same").glob("*.parquet"))[0]
    assert invoke(str(baseline), str(one_file)).exit_code == 0  # a single Parquet file is a side too


def test_hardware_mismatch_is_refused_unless_allowed_and_then_said(tmp_path):
    baseline = write_side(tmp_path / "h100", runs(1))
    other = write_side(tmp_path / "h200", runs(2, gpu_name="NVIDIA H200"))
    refused = invoke(str(baseline), str(other))
    assert refused.exit_code == 2
    assert "refusing to compare timings across hardware" in refused.stderr and "NVIDIA H200" in refused.stderr
    newer_torch = write_side(tmp_path / "torch", runs(2, torch_version="2.12.0+cu130"))
    assert invoke(str(baseline), str(newer_torch)).exit_code == 2
    newer_driver_minor = write_side(tmp_path / "driver", runs(2, driver_version="580.99.01"))
    assert invoke(str(baseline), str(newer_driver_minor)).exit_code == 0  # same driver major
    allowed = invoke(str(baseline), str(other), "--allow-hardware-mismatch")
    assert allowed.exit_code == 0 and "hardware mismatch allowed" in allowed.stdout


def test_cells_in_one_side_only_are_listed(tmp_path):
    baseline = write_side(tmp_path / "baseline", runs(1) + runs(3, method="adapter"))
    current = write_side(tmp_path / "current", runs(2) + runs(4, method="bitfit"))
    outcome = invoke(str(baseline), str(current), "--json")
    assert outcome.exit_code == 0
    document = json.loads(outcome.stdout)
    assert document["only_in_baseline"] == ["synth/tiny/adapter (cfg-adap)"]
    assert document["only_in_current"] == ["synth/tiny/bitfit (cfg-bitf)"]
    markdown = invoke(str(baseline), str(current)).stdout
    assert "**Only in the baseline**" in markdown and "synth/tiny/bitfit" in markdown
    nothing_shared = write_side(tmp_path / "other", runs(5, method="fft"))
    unusable = invoke(str(baseline), str(nothing_shared))
    assert unusable.exit_code == 2 and "nothing to compare" in unusable.stderr


def test_inconclusive_fails_only_when_asked(tmp_path):
    baseline = write_side(tmp_path / "baseline", runs(1, repeats=1, steps=3))
    current = write_side(tmp_path / "current", runs(2, repeats=1, steps=3))
    assert invoke(str(baseline), str(current)).exit_code == 0
    assert invoke(str(baseline), str(current), "--fail-on-inconclusive").exit_code == 4  # its own code
    assert invoke(str(baseline), str(current), "--time-threshold", "150").exit_code == 2


def test_sides_built_under_different_transformers_get_a_note_on_accuracy(tmp_path):
    old, new = json.dumps({"transformers": "4.48.3"}), json.dumps({"transformers": "5.17.0"})
    baseline = write_side(tmp_path / "old", runs(1, package_versions=old))
    current = write_side(tmp_path / "new", runs(2, package_versions=new))
    outcome = invoke(str(baseline), str(current))
    assert outcome.exit_code == 0, outcome.output
    assert "transformers differs (baseline 4.48.3; current 5.17.0)" in outcome.stdout
    assert "efficiency figures are unaffected" in outcome.stdout
    document = json.loads(invoke(str(baseline), str(current), "--json").stdout)
    assert len(document["notes"]) == 1
    same = write_side(tmp_path / "same", runs(3, package_versions=old))
    assert json.loads(invoke(str(baseline), str(same), "--json").stdout)["notes"] == []
