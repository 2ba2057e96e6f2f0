"""Plug-ins the Python way: a package that declares an `mmbench.methods` entry point is found once installed, with
no MMBENCH_PLUGINS; `mmbench list` says which package each entry comes from, and its method runs a cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY_SUITE

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "mmbench-toy-plugin"
version = "0.3.0"

[project.entry-points."mmbench.methods"]
top_layers = "mmbench_toy_plugin"
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example method (examples/plugins/top_layers_method.py) as an installed package, in its own target
    directory: found through its distribution's entry points, as pip install puts them."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "project" / "mmbench_toy_plugin"
    package.mkdir(parents=True)
    (root / "project" / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text((ROOT / "examples" / "plugins" / "top_layers_method.py").read_text())
    target = root / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*install, "--target", str(target), str(root / "project")], check=True, cwd=root)
    assert list(target.glob("mmbench_toy_plugin-0.3.0.dist-info/entry_points.txt"))
    return target


def _mmbench(installed: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    environment.pop("MMBENCH_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *arguments], cwd=cwd, env=environment, capture_output=True, text=True
    )


def test_an_installed_package_registers_its_method_and_list_names_the_package(installed, tmp_path):
    listed = _mmbench(installed, "list", "methods", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    origins = {entry["name"]: entry["origin"] for entry in json.loads(listed.stdout)}
    assert origins["top_layers"] == "mmbench-toy-plugin 0.3.0 (entry point mmbench.methods: top_layers)"
    assert origins["lora"] == origins["iisan"] == "built in"


def test_a_broken_entry_point_is_one_message_naming_the_package(installed, tmp_path):
    module = installed / "mmbench_toy_plugin" / "__init__.py"
    working = module.read_text()
    module.write_text("import a_dependency_the_plugin_forgot\n")
    try:
        listed = _mmbench(installed, "list", "methods", cwd=tmp_path)
    finally:
        module.write_text(working)
    assert listed.returncode == 2 and "Traceback" not in listed.stderr
    assert "mmbench-toy-plugin 0.3.0 (entry point mmbench.methods: top_layers): cannot import" in listed.stderr


@pytest.mark.slow
def test_the_installed_method_runs_a_cell(installed, tmp_path):
    suite = tmp_path / "suite.yaml"
    methods = "[{name: top_layers, options: {layers: 1}}]"
    suite.write_text(TINY_SUITE.format(methods=methods, max_steps=3, eval="false"))
    run = _mmbench(installed, "run", str(suite), "--results", str(tmp_path / "results"), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [cell["status"] for cell in json.loads(run.stdout)["cells"]] == ["ok"]
