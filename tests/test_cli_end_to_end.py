"""The whole path on the CPU: suite -> cells in subprocesses -> Parquet rows -> leaderboard."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results.read import read_results
from benchmark.results.schema import COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from tests.conftest import TINY_SUITE

    directory = tmp_path_factory.mktemp("run")
    suite = directory / "suite.yaml"
    methods = (
        "[fft, lora, adapter, bitfit, {name: iisan, options: {layer_stride: 1}}, "
        "{name: iisan_cached, options: {layer_stride: 1}}]"
    )
    suite.write_text(TINY_SUITE.format(methods=methods, max_steps="null", eval="true"))
    results = directory / "results"
    outcome = runner.invoke(app, ["run", str(suite), "--results", str(results), "--json"])
    return outcome, results


def test_run_writes_one_complete_row_per_cell(finished_run):
    outcome, results = finished_run
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    assert [c["status"] for c in summary["cells"]] == ["ok"] * 6
    frame, warnings = read_results(results)
    assert warnings == [] and frame.height == 6
    assert set(COLUMNS) <= set(frame.columns)
    row = frame.filter(pl.col("method") == "lora").row(0, named=True)
    assert row["epoch_kind"] == "measured" and row["epoch_s"] > 0
    assert row["measured_steps"] == row["steps_per_epoch"] - 1 == len(row["step_ms"])  # one warm-up step excluded
    assert len(row["warmup_ms"]) == 1
    assert row["step_ms_p10"] <= row["step_ms_median"] <= row["step_ms_p90"]
    # CPU run: NVML and torch-CUDA figures are null, never 0; memory falls back to peak RSS.
    for column in (
        "nvml_peak_process_gib",
        "nvml_peak_device_gib",
        "nvml_baseline_gib",
        "torch_peak_reserved_gib",
        "energy_j_per_epoch",
    ):
        assert row[column] is None, column
    assert row["peak_mem_source"] == "cpu_rss" and row["peak_mem_gib"] > 0
    assert 0 <= row["test_ndcg@10"] <= row["test_hr@10"] <= 1
    assert row["git_sha"] is None or len(row["git_sha"]) == 40
    assert json.loads(row["config_json"])["method"]["name"] == "lora"
    assert row["trainable_params"] < row["total_params"]
    # Predicted before it ran (`mmbench estimate`), on this CPU, beside what it measured.
    assert row["predicted_on"].startswith("cpu ") and row["predicted_fits"] == "yes"
    assert 0 < row["predicted_peak_alloc_gib"] < row["predicted_peak_process_gib"] and row["predicted_step_ms"] > 0
    assert set(json.loads(row["predicted_parts"])) >= {"weights", "gradients", "optimizer", "saved_activations"}
    # fp32: 4 bytes a parameter; AdamW keeps two moments per trainable parameter (plus a scalar step each).
    assert row["weights_trainable_bytes"] == row["gradient_bytes"] == 4 * row["trainable_params"]
    assert row["weights_frozen_bytes"] == 4 * (row["total_params"] - row["trainable_params"])
    assert 8 * row["trainable_params"] < row["optimizer_state_bytes"] < 8 * row["trainable_params"] + 4 * 1000


def test_cached_row_records_the_cache_and_counts_the_towers(finished_run):
    _, results = finished_run
    frame, _ = read_results(results)
    cached = frame.filter(pl.col("method") == "iisan_cached").row(0, named=True)
    uncached = frame.filter(pl.col("method") == "iisan").row(0, named=True)
    assert cached["cache_build_s"] > 0 and cached["cache_bytes"] > 0
    assert cached["cache_origin"] == "built" and json.loads(cached["cache_built_on"])[0]["device"].startswith("cpu")
    assert cached["epoch_amortized_s"] == pytest.approx(cached["epoch_s"] + cached["cache_build_s"])  # one epoch
    assert cached["device_lock"] == "held" and uncached["device_lock"] == "held"
    # Run again: the cache is found, and its build (on this machine) is still this configuration's cost.
    from benchmark.launch.local import run_cell_subprocess
    from benchmark.plan.loader import load_suite
    from benchmark.suite.matrix import expand_cells

    cell = next(
        c for c in expand_cells(load_suite(results.parent / "suite.yaml")) if c.config.method.name == "iisan_cached"
    )
    assert run_cell_subprocess(cell, results.parent / "again", "again").status == "ok"
    again = read_results(results.parent / "again")[0].row(0, named=True)
    assert again["cache_origin"] == "reused" and again["cache_build_s"] == pytest.approx(cached["cache_build_s"])
    assert again["epoch_amortized_s"] is not None
    assert uncached["cache_build_s"] is None and uncached["epoch_amortized_s"] == pytest.approx(uncached["epoch_s"])
    assert cached["trainable_params"] == uncached["trainable_params"]
    assert cached["total_params"] == uncached["total_params"]  # frozen towers count in the total either way


def test_cache_build_command_finds_what_run_built(finished_run):
    _, results = finished_run
    suite = results.parent / "suite.yaml"
    outcome = runner.invoke(app, ["cache", "build", str(suite)])
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("found ") for line in lines)
    entries = json.loads(runner.invoke(app, ["cache", "build", str(suite), "--json"]).stdout)
    assert {entry["modality"] for entry in entries} == {"text", "image"} and {entry["status"] for entry in entries} == {
        "found"
    }
    listed = json.loads(runner.invoke(app, ["cache", "list", "--json"]).stdout)
    assert {entry["layers"][-1] for entry in listed} >= {2}


def test_report_formats(finished_run):
    _, results = finished_run
    table = runner.invoke(app, ["report", "--results", str(results)])
    assert table.exit_code == 0 and "TPME weights: time 0.45, params 0.1, memory 0.45" in table.stdout
    data = json.loads(runner.invoke(app, ["report", "--results", str(results), "--format", "json"]).stdout)
    methods = {row["method"]: row for row in data["rows"]}
    assert set(methods) == {"fft", "lora", "adapter", "bitfit", "iisan", "iisan_cached"}
    assert methods["fft"]["tpme_fft"] == pytest.approx(1.0)
    assert max(row["tpme"] for row in data["rows"]) <= 1.0 and min(row["tpme"] for row in data["rows"]) >= 0.0
    csv = runner.invoke(app, ["report", "--results", str(results), "--format", "csv"]).stdout
    assert csv.splitlines()[0].startswith("dataset,") and len(csv.splitlines()) == 7
    markdown = runner.invoke(
        app, ["report", "--results", str(results), "--format", "md", "--weights", "0.5,0.0,0.5"]
    ).stdout
    assert "| method |" in markdown and "time 0.5, params 0, memory 0.5" in markdown
    # Where the cost goes, for every method: memory breakdown, FLOPs per step, TFLOP/s, throughput, time to accuracy.
    for row in data["rows"]:
        for column in ("weights_trainable_bytes", "gradient_bytes", "optimizer_state_bytes", "activation_saved_bytes"):
            assert row[column] > 0, (row["method"], column)
        assert row["flops_per_step"] == sum(row[f"flops_{part}"] for part in ("tower", "side", "user", "other")) > 0
        assert row["tflops_per_s"] > 0 and row["items_per_s"] > 0 and row["tokens_per_s"] > 0 and row["tta_s"] > 0
    assert methods["iisan_cached"]["flops_tower"] == 0 < methods["iisan"]["flops_tower"] < methods["fft"]["flops_tower"]
    assert methods["iisan_cached"]["tta_incl_cache_s"] > methods["iisan_cached"]["tta_s"]
    cost_table = markdown.split(": where the cost goes")[1].split("\n- ")[0]
    header = [cell.strip() for cell in cost_table.splitlines()[2].strip("|").split("|")]
    assert {"GFLOP/step [tower/side/user/other]", "TFLOP/s", "saved activations MiB", "TTA s"} <= set(header)
    cost_rows = [line for line in cost_table.splitlines()[4:] if line.startswith("|")]
    assert len(cost_rows) == 6
    for line in cost_rows:
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for column in ("grads MiB", "optimizer MiB", "saved activations MiB", "GFLOP/step [tower/side/user/other]"):
            assert cells[column] != "–", (cells["method"], column)
        # Significant digits, not fixed decimals: a slow machine's small TFLOP/s once printed as 0.000.
        for column in ("TFLOP/s", "TTA s"):
            assert float(cells[column]) > 0 and len(cells[column].replace(".", "").lstrip("0")) >= 2, cells[column]
    assert "where the cost goes" in table.stdout
    bad = runner.invoke(app, ["report", "--results", str(results), "--weights", "1,1,1"])
    assert bad.exit_code == 2 and "sum to 1" in bad.stderr


def test_report_skips_and_names_a_corrupt_file(finished_run):
    _, results = finished_run
    broken = results / "broken.parquet"
    broken.write_bytes(b"garbage")
    try:
        outcome = runner.invoke(app, ["report", "--results", str(results), "--format", "csv"])
        assert outcome.exit_code == 0 and "skipped" in outcome.stderr and "broken.parquet" in outcome.stderr
        assert len(outcome.stdout.splitlines()) == 7
    finally:
        broken.unlink()


def test_invalid_suite_is_refused_before_anything_runs(write_suite, tmp_path):
    path = write_suite(methods="[fft, lorra]")
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["run", str(path), "--results", str(results)])
    assert outcome.exit_code == 2 and "did you mean 'lora'" in outcome.stderr and f"{path}:" in outcome.stderr
    assert not results.exists()
    validate = runner.invoke(app, ["validate", str(path)])
    assert validate.exit_code == 2 and "lorra" in validate.stderr


def test_dry_run_and_only(write_suite, tmp_path):
    path = write_suite(methods="[fft, lora, bitfit]")
    outcome = runner.invoke(app, ["run", str(path), "--dry-run", "--json", "--only", "*/lora/*"])
    cells = json.loads(outcome.stdout)
    assert [c["cell_id"] for c in cells] == ["synth/micro/lora/seed=0"] and len(cells[0]["config_hash"]) == 12
    none = runner.invoke(app, ["run", str(path), "--only", "*/nothing/*"])
    assert none.exit_code == 2 and "matches no cell" in none.stderr


def test_unwritable_results_is_one_clear_error(write_suite, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    outcome = runner.invoke(app, ["run", str(write_suite()), "--results", str(blocker / "r")])
    assert outcome.exit_code == 2 and "not writable" in outcome.stderr


def test_list_and_env():
    methods = json.loads(runner.invoke(app, ["list", "methods", "--json"]).stdout)
    assert {m["name"] for m in methods} >= {"fft", "lora", "adapter", "bitfit"}
    towers = {t["name"]: t for t in json.loads(runner.invoke(app, ["list", "towers", "--json"]).stdout)}
    assert towers["bert-base"]["layers"] == 12 and towers["vit-large"]["hidden"] == 1024
    assert "synthetic" in runner.invoke(app, ["list", "datasets"]).stdout
    environment = json.loads(runner.invoke(app, ["env", "--json"]).stdout)
    assert environment["torch_version"] and "nvml_available" in environment


def test_cli_conventions(write_suite, finished_run):
    from benchmark import __version__

    _, results = finished_run
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip() == f"mmbench {__version__}"
    valid = json.loads(runner.invoke(app, ["validate", str(write_suite()), "--json"]).stdout)
    assert valid["ok"] is True and valid["cells"] == 2 and valid["problems"] == []
    invalid = runner.invoke(app, ["validate", str(write_suite(methods="[lorra]")), "--json"])
    assert invalid.exit_code == 2 and "did you mean 'lora'" in json.loads(invalid.stdout)["problems"][0]
    alias = runner.invoke(app, ["report", "--results", str(results), "--json"])
    assert alias.exit_code == 0 and json.loads(alias.stdout)["rows"]
    for command in (["run"], ["report"], ["validate"], ["data", "import"], ["cache", "build"]):
        assert "Example: mmbench" in runner.invoke(app, [*command, "--help"]).stdout, command
