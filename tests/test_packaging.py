"""What a user installs: the wheel carries the suites, presets and report code, and runs the smoke suite offline
from a clean environment, away from the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


def test_the_project_says_how_to_cite_and_license_it():
    metadata = (ROOT / "pyproject.toml").read_text()
    assert 'license = "Apache-2.0"' in metadata and "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "Apache-2.0"
    assert citation["version"] == __import__("benchmark").__version__  # cited as the version rows record


@pytest.mark.slow
def test_the_wheel_installs_in_a_clean_venv_and_runs_the_smoke_suite_offline(tmp_path):
    # Built from a copy of what the wheel is made of: setuptools builds in the source tree, and a `build/` left by an
    # earlier build would carry modules since removed.
    source = tmp_path / "source"
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "LICENSE", "suites"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copyfile)(ROOT / part, source / part)
    shutil.copytree(
        ROOT / "benchmark", source / "benchmark", symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    wheelhouse = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheelhouse)]
    subprocess.run([*build, str(source)], check=True, cwd=tmp_path)
    wheel = next(wheelhouse.glob("mmbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("shipped_suites/smoke.yaml", "models/presets/bert-tiny.json", "report/html_assets.py", "py.typed"):
        assert f"benchmark/{shipped}" in names, shipped
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(name.startswith(("bench/", "tests/", "examples/")) for name in names)  # developer files stay out

    venv = tmp_path / "clean"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies (torch, transformers, ...) come from this environment, read only: a .pth line adds its
    # directory, never the .pth files in it, so the checkout's editable install of mmbench is not on the path.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, str(wheel)], check=True)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    where = subprocess.run(
        [str(python), "-c", "import benchmark; print(benchmark.__file__)"],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(site)), where  # the wheel's copy, not the checkout's
    run = subprocess.run(
        [str(venv / "bin" / "mmbench"), "run", "smoke", "--results", str(tmp_path / "results"), "--json"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert [cell["status"] for cell in json.loads(run.stdout)["cells"]] == ["ok"] * 6
