"""Tiny CPU versions of the shipped GPU suites: the same tower sets, methods and filters, micro towers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from benchmark.cli import app

ROOT = Path(__file__).resolve().parents[1]
MICRO = {
    "bert-base": "bert-tiny",
    "bert-large": "bert-tiny",
    "qwen2-0.5b": "qwen2-micro",
    "llama-1b": "llama-micro",
    "llama-8b": "llama-micro",
    "vit-base": "vit-micro",
    "videomae-base": "videomae-micro",
    "ast-base": "ast-micro",
}


def tiny_version(name: str, directory: Path) -> Path:
    suite = yaml.safe_load((ROOT / "suites" / f"{name}.yaml").read_text())
    for tower_set in suite["towers"]:
        for modality in ("text", "image", "video", "audio"):
            if modality in tower_set:
                tower_set[modality] = {
                    "preset": MICRO[tower_set[modality]["preset"]],
                    "weights": "random",
                    **({"max_tokens": 8} if modality == "text" else {}),
                    **({"image_size": 16} if modality == "image" else {}),
                }
    options = suite["datasets"][0]["options"]
    options.update(users=24, items=30, clusters=3, min_len=5, max_len=8, image_size=16)
    if options.get("video"):
        options.update(video_frames=2, video_size=16, audio_frames=32, audio_mels=16)
    suite["train"].update(batch_size=8, max_steps=2, warmup_steps=1, precision="fp32", device="cpu")
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, cells", [("versa-scaling", 25), ("crossan-4modal", 14), ("gpu-check", 14), ("llm-fft-baseline", 8)]
)
def test_tiny_version_of_shipped_suite_runs(tmp_path, name, cells):
    suite = tiny_version(name, tmp_path)
    outcome = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "results"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    statuses = [cell["status"] for cell in json.loads(outcome.stdout)["cells"]]
    assert statuses == ["ok"] * cells


def test_tiny_versions_expand_like_the_shipped_suites(tmp_path):
    from benchmark.plan.loader import load_suite
    from benchmark.suite.matrix import expand_cells

    for name in ("versa-scaling", "crossan-4modal", "gpu-check", "llm-fft-baseline"):
        shipped = [cell.cell_id for cell in expand_cells(load_suite(ROOT / "suites" / f"{name}.yaml"))]
        tiny = [cell.cell_id for cell in expand_cells(load_suite(tiny_version(name, tmp_path)))]
        assert tiny == shipped


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="the CPU path of gpu-check; on a GPU it runs the real thing"
)
def test_gpu_check_without_a_gpu_says_so_and_runs_the_smoke_suite(tmp_path):
    import os
    import subprocess
    import sys

    environment = {**os.environ, "GPU_RESULTS": str(tmp_path / "gpu-check"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no CUDA GPU here" in done.stderr
    assert "suites/gpu-check.yaml: ok (14 cells)" in done.stdout
    assert "iisan_cached" in done.stdout and "TPME weights" in done.stdout


def test_a_shipped_suite_runs_by_name_from_any_directory(tmp_path, monkeypatch):
    # Before: `mmbench run smoke` outside the checkout was "smoke: cannot read suite file".
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    planned = runner.invoke(app, ["run", "smoke", "--dry-run", "--json"])
    assert planned.exit_code == 0, planned.output
    assert len(json.loads(planned.stdout)) == 6
    listed = runner.invoke(app, ["suites", "list", "--json"])
    names = [entry["name"] for entry in json.loads(listed.stdout)]
    assert names == sorted(path.stem for path in (ROOT / "suites").glob("*.yaml")) and "smoke" in names
    shown = runner.invoke(app, ["suites", "show", "smoke"])
    assert shown.exit_code == 0 and shown.stdout == (ROOT / "suites" / "smoke.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(shown.stdout)  # a start for one's own suite
    assert runner.invoke(app, ["validate", "mine.yaml"]).exit_code == 0


def test_an_unknown_suite_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(app, ["suites", "show", "smok"])
    assert outcome.exit_code == 2
    message = " ".join(outcome.stderr.split())
    assert (
        "no shipped suite called 'smok' (did you mean 'smoke'? shipped: crossan-4modal, design-space, estimate-check, "
        "gpu-check," in message
    )
    missing_file = CliRunner().invoke(app, ["validate", "nowhere/smoke.yaml"])
    assert missing_file.exit_code == 2 and "nowhere/smoke.yaml: cannot read suite file" in missing_file.stderr
