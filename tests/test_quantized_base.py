"""Quantized frozen bases (`base_precision: nf4 | int8`, QLoRA): refused where they cannot work, at the suite's line;
a `skipped` row with the reason on a machine without a CUDA GPU, which resume, compare and the report understand;
and, with bitsandbytes on the path, the quantized layers, their real byte counts and peft's quantized forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import SuiteError
from benchmark.plan import entry_checks
from benchmark.plan.loader import load_suite
from benchmark.results.read import read_results
from benchmark.suite.matrix import config_id, expand_cells
from tests.conftest import ROOT, TINY_SUITE

# `make setup` installs bitsandbytes here, off the environment's path (see the Makefile's QUANT_SITE).
BITSANDBYTES_SITE = Path(os.environ.get("MMBENCH_BITSANDBYTES_SITE", ROOT / ".venv" / "bitsandbytes-site"))


def _suite(tmp_path: Path, methods: str, device: str = "auto", name: str = "suite.yaml", **train: object) -> Path:
    text = TINY_SUITE.format(methods=methods, max_steps=3, eval="false").replace("device: cpu", f"device: {device}")
    for key, value in train.items():
        text = text.replace("train:\n", f"train:\n  {key}: {value}\n")
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(path: Path) -> str:
    with pytest.raises(SuiteError) as raised:
        load_suite(path)
    return str(raised.value)


def test_full_fine_tuning_on_a_quantized_base_is_refused_at_its_line(tmp_path):
    problems = _problems(_suite(tmp_path, "[lora, {name: fft, base_precision: nf4}]"))
    assert f"{tmp_path / 'suite.yaml'}:10: methods[1].base_precision: method 'fft' cannot train on a nf4 base" in (
        problems
    )
    assert "lora, adapter, bitfit, peft or a side network" in problems


def test_a_quantized_base_on_device_cpu_is_refused_at_its_line(tmp_path):
    problems = _problems(_suite(tmp_path, "[{name: lora, base_precision: int8}]", device="cpu"))
    assert "suite.yaml:10: methods[0].base_precision: base_precision int8 runs on a CUDA GPU" in problems
    assert "train.device is cpu" in problems


def test_an_unknown_base_precision_gets_a_did_you_mean(tmp_path):
    problems = _problems(_suite(tmp_path, "[{name: lora, base_precision: nf5}]"))
    assert "methods[0].base_precision: unknown value 'nf5' (did you mean 'nf4'? choices: nf4, int8)" in problems


def test_cells_without_a_quantized_base_keep_their_ids_and_one_with_it_is_other_work(tmp_path):
    plain = expand_cells(load_suite(_suite(tmp_path, "[lora]")))[0]
    explicit = expand_cells(load_suite(_suite(tmp_path, "[{name: lora, base_precision: null}]")))[0]
    quantized = expand_cells(load_suite(_suite(tmp_path, "[{name: lora, base_precision: nf4}]")))[0]
    assert config_id(plain.config) == config_id(explicit.config)
    assert config_id(quantized.config) != config_id(plain.config)
    assert quantized.config.method.base_precision == "nf4"


def test_validation_warns_where_the_cells_would_only_be_skipped(tmp_path, monkeypatch):
    path = _suite(tmp_path, "[lora, {name: lora, label: qlora, base_precision: nf4}]")
    monkeypatch.setattr(entry_checks, "bitsandbytes_installed", lambda: False)
    warnings: list[str] = []
    load_suite(path, warnings=warnings)
    assert len(warnings) == 1 and "methods[1].base_precision: bitsandbytes is not installed here" in warnings[0]
    assert "pip install 'mmbench[quant]'" in warnings[0]
    monkeypatch.setattr(entry_checks, "bitsandbytes_installed", lambda: True)
    monkeypatch.setattr(entry_checks, "largest_gpu", lambda: None)
    warnings.clear()
    load_suite(path, warnings=warnings)
    assert len(warnings) == 1 and "no CUDA GPU is visible here" in warnings[0]


def test_on_a_cpu_machine_quantized_cells_are_skipped_rows_with_the_reason(tmp_path):
    """The uncached cell skips in its own process, the cached one in its cache build (the launcher writes its row);
    the run passes, the report lists them, resume runs them again, and compare does not call them failures."""
    path = _suite(
        tmp_path,
        "[{name: lora, label: qlora, base_precision: nf4}, "
        "{name: iisan_cached, label: iisan-int8, base_precision: int8}]",
    )
    results = tmp_path / "results"
    runner = CliRunner()
    run = runner.invoke(app, ["run", str(path), "--results", str(results)])
    assert run.exit_code == 0, run.output
    rows, _ = read_results(results)
    by_label = {row["method_label"]: row for row in rows.iter_rows(named=True)}
    for label, precision in (("qlora", "nf4"), ("iisan-int8", "int8")):
        row = by_label[label]
        assert row["status"] == "skipped" and row["base_precision"] == precision
        assert f"base_precision {precision} needs a CUDA GPU" in row["error"]
        assert row["step_ms"] is None  # nothing measured

    run_dir = next(path for path in results.iterdir() if path.is_dir() and path.name.startswith("tiny-"))
    status = json.loads(runner.invoke(app, ["status", str(run_dir), "--json"]).stdout)
    assert status["counts"] == {"skipped": 2}
    assert all("needs a CUDA GPU" in cell["detail"] for cell in status["cells"])

    report = runner.invoke(app, ["report", "--results", str(results), "--suite", "tiny"])
    assert report.exit_code == 0, report.output
    assert "skipped: synth/micro/qlora/seed=0: base_precision nf4 needs a CUDA GPU" in report.stdout

    again = runner.invoke(app, ["run", str(path), "--results", str(results), "--dry-run"])
    assert again.exit_code == 0, again.output
    assert "qlora" in again.output and "iisan-int8" in again.output  # not done: resume runs them again

    compared = runner.invoke(app, ["compare", str(results), str(results), "--json"])
    assert compared.exit_code == 0, compared.output
    document = json.loads(compared.stdout)
    assert document["failed_in_current"] == []
    assert [cell.split(" ")[0] for cell in document["skipped_in_current"]] == [
        "synth/micro/iisan-int8/seed=0",
        "synth/micro/qlora/seed=0",
    ]


def test_compare_calls_a_skipped_cell_inconclusive_where_the_baseline_measured_it(tmp_path):
    from tests.test_compare import invoke, runs, write_side

    baseline = write_side(tmp_path / "baseline", runs(1) + runs(3, method="iisan"))
    skipped = runs(4, method="iisan", status="skipped")
    for row in skipped:
        row["error"] = "base_precision nf4 needs a CUDA GPU"
    current = write_side(tmp_path / "current", runs(2) + skipped)
    outcome = invoke(str(baseline), str(current), "--json")
    assert outcome.exit_code == 0, outcome.output  # nothing failed: skipped by design
    document = json.loads(outcome.stdout)
    status = [f for f in document["figures"] if f["figure"] == "status"]
    assert [(f["verdict"], f["current"]) for f in status] == [("inconclusive", "skipped")]
    assert invoke(str(baseline), str(current), "--fail-on-inconclusive").exit_code == 4


@pytest.fixture(scope="module")
def quantized_cells(tmp_path_factory) -> dict:
    """The cells of tests/quantized_cells.py, run once with bitsandbytes on the path."""
    # Not a skip: without it these tests would prove nothing, and `make test` always has it.
    assert (BITSANDBYTES_SITE / "bitsandbytes").is_dir(), (
        f"no bitsandbytes in {BITSANDBYTES_SITE}: `make setup` installs it there (or set MMBENCH_BITSANDBYTES_SITE)"
    )
    directory = tmp_path_factory.mktemp("quantized")
    methods = (
        "[lora, {name: lora, label: qlora, base_precision: nf4}, {name: lora, label: lora-int8, base_precision: int8}, "
        "{name: peft, label: dora-nf4, base_precision: nf4, options: {type: DORA}}, "
        "{name: peft, label: ia3-int8, base_precision: int8, options: {type: IA3}}, "
        "{name: adapter, label: adapter-nf4, base_precision: nf4}, "
        "iisan_cached, {name: iisan_cached, label: iisan_cached-nf4, base_precision: nf4}]"
    )
    suite = _suite(directory, methods)
    _suite(directory, "[{name: peft, label: loha, base_precision: nf4, options: {type: LOHA}}]", name="refused.yaml")
    out = directory / "report.json"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BITSANDBYTES_SITE)])}
    subprocess.run(
        [sys.executable, str(ROOT / "tests" / "quantized_cells.py"), str(suite), str(out)],
        check=True,
        env=environment,
        cwd=directory,
        timeout=600,
    )
    report: dict = json.loads(out.read_text())
    return report


def test_quantized_weights_count_at_their_real_size(quantized_cells):
    values = 256 * 512
    blocks = values // 64  # NF4 blocks of 64 values, each with a scale
    nf4 = values // 2 + blocks + 4 * -(-blocks // 256) + 4 * 16 + 4 * 256  # packed, uint8 scales, their scales, codes
    int8 = values + 4 * 512  # a byte a value, an fp32 scale a row
    assert quantized_cells["layer_bytes"] == {"nf4": nf4, "int8": int8}


def test_peft_methods_train_on_a_quantized_base_with_the_same_trainable_parameters(quantized_cells):
    rows = quantized_cells["rows"]
    lora = rows["lora"]
    for label in ("qlora", "lora-int8", "dora-nf4", "ia3-int8", "adapter-nf4"):
        row = rows[label]
        # The frozen base holds as many values whatever it is stored in: 4-bit weights count as the values they pack.
        assert row["total_params"] - row["trainable_params"] == lora["total_params"] - lora["trainable_params"], label
        assert row["weights_frozen_bytes"] < lora["weights_frozen_bytes"], label
        losses = row["train_loss"]
        assert len(losses) == 3 and all(loss == loss for loss in losses) and losses[0] != losses[1], label
    for label in ("qlora", "lora-int8"):
        assert rows[label]["trainable_params"] == lora["trainable_params"]
    assert rows["dora-nf4"]["trainable_params"] > lora["trainable_params"]  # DoRA's magnitude vectors
    # NF4 holds a linear weight in about half a byte, int8 in one: the 4-bit base is the smaller.
    assert rows["qlora"]["weights_frozen_bytes"] < rows["lora-int8"]["weights_frozen_bytes"]


def test_a_quantized_tower_keys_its_own_hidden_state_cache(quantized_cells):
    rows = quantized_cells["rows"]
    plain, quantized = rows["iisan_cached"], rows["iisan_cached-nf4"]
    assert len(plain["cache_keys"]) == 2 and len(quantized["cache_keys"]) == 2
    assert not set(plain["cache_keys"]) & set(quantized["cache_keys"])
    assert quantized["trainable_params"] == plain["trainable_params"]


def test_a_peft_method_without_a_quantized_form_is_refused_at_its_line(quantized_cells):
    (problem,) = quantized_cells["refused"]
    assert "refused.yaml:10: methods[0].base_precision: method 'peft' cannot train on a nf4 base" in problem
    assert "peft LOHA has no layer for bitsandbytes' quantized linear layers" in problem


def test_the_report_names_the_quantized_base_beside_the_method():
    from benchmark.report.columns import method_cell

    row = {"method_label": "qlora", "base_precision": "nf4", "gradient_checkpointing": "non-reentrant"}
    assert method_cell(row) == "qlora (nf4 base, checkpointed)"
    assert method_cell({"method_label": "lora", "base_precision": None}) == "lora"


def test_a_skipped_row_is_read_back_with_its_status(tmp_path):
    from benchmark.results.cell_row import begin_row, finish_row
    from benchmark.results.store import write_row

    config = expand_cells(load_suite(_suite(tmp_path, "[{name: lora, base_precision: int8}]")))[0].config
    import datetime as dt

    row = finish_row(begin_row(config, "run", "held", dt.datetime.now(dt.timezone.utc), {}), "skipped", "no GPU")
    write_row(tmp_path / "rows" / "one.parquet", row)
    rows, _ = read_results(tmp_path / "rows")
    assert rows.select("status", "base_precision", "error").row(0) == ("skipped", "int8", "no GPU")
    assert rows.filter(pl.col("status") == "skipped").height == 1


def test_the_carried_bitsandbytes_wheel_keeps_only_what_the_gpu_image_needs(tmp_path):
    import zipfile

    from scripts.slim_wheel import slim

    wheel = tmp_path / "bitsandbytes-1.0-py3-none-any.whl"
    members = [
        "bitsandbytes/__init__.py",
        "bitsandbytes/libbitsandbytes_cuda124.so",
        "bitsandbytes/libbitsandbytes_cuda130.so",
    ]
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in members:
            archive.writestr(name, name * 10)
        archive.writestr("bitsandbytes-1.0.dist-info/RECORD", "".join(f"{name},sha256=x,1\n" for name in members))
    assert slim(wheel, ["bitsandbytes/libbitsandbytes_cuda1[0-2]*"]) == ["bitsandbytes/libbitsandbytes_cuda124.so"]
    with zipfile.ZipFile(wheel) as archive:
        kept = archive.namelist()
        record = archive.read("bitsandbytes-1.0.dist-info/RECORD").decode()
    assert kept == [members[0], members[2], "bitsandbytes-1.0.dist-info/RECORD"]
    assert "cuda124" not in record and "cuda130" in record


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_qlora_trains_on_a_cuda_gpu_with_a_smaller_base(tmp_path):
    """What the CPU tests open a gate for, on the device it is for: bitsandbytes' CUDA kernels (`make gpu-check` puts
    the carried wheel on the path)."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed (make gpu-wheels carries it)")
    from benchmark.results.schema import empty_row
    from benchmark.train.loop import run_cell

    methods = "[lora, {name: lora, label: qlora, base_precision: nf4}, {name: lora, label: q8, base_precision: int8}]"
    rows = {}
    for cell in expand_cells(load_suite(_suite(tmp_path, methods, device="cuda", precision="bf16"))):
        row = empty_row()
        run_cell(cell.config, row, lambda event: None)
        rows[cell.config.method.label] = row
    for label in ("qlora", "q8"):
        assert rows[label]["trainable_params"] == rows["lora"]["trainable_params"]
        assert rows[label]["weights_frozen_bytes"] < rows["lora"]["weights_frozen_bytes"]
        assert rows[label]["step_ms"] and all(loss == loss for loss in rows[label]["train_loss"])
    assert rows["qlora"]["weights_frozen_bytes"] < rows["q8"]["weights_frozen_bytes"]


def test_cache_build_skips_a_quantized_cached_cell_here_and_builds_the_rest(tmp_path):
    path = _suite(tmp_path, "[iisan_cached, {name: iisan_cached, label: cached-nf4, base_precision: nf4}]")
    outcome = CliRunner().invoke(app, ["cache", "build", str(path), "--json"])
    assert outcome.exit_code == 0, outcome.output
    entries = json.loads(outcome.stdout)
    statuses = sorted(entry["status"] for entry in entries)
    assert statuses[-1] == "skipped" and len(statuses) == 3 and set(statuses[:2]) <= {"built", "found"}
    skipped = next(entry for entry in entries if entry["status"] == "skipped")
    assert skipped["cell_id"] == "synth/micro/cached-nf4/seed=0" and "needs a CUDA GPU" in skipped["reason"]
