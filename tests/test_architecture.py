"""The architecture page's recipe for a new dataset format, followed from outside the package."""

from __future__ import annotations

import json
import textwrap

from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results.read import read_results

TOY_FORMAT = '''
"""A toy layout: history.txt with one user per line, `user: item item item`, and titles made from item ids."""

from pathlib import Path

from benchmark.data.raw import RawDataset, text_lines
from benchmark.formats.registry import DatasetFormat, register_format


def read_toy(directory: Path, on_error: str, encoding: str) -> RawDataset:
    problems: list[str] = []
    index: dict[str, int] = {}
    users, sequences = [], []
    for _, line in text_lines(directory / "history.txt", problems, encoding):
        if line and ":" in line:
            user, items = line.split(":", 1)
            users.append(user.strip())
            sequences.append([index.setdefault(key, len(index) + 1) for key in items.split()])
    keys = sorted(index, key=index.get)
    return RawDataset(str(directory), keys, [f"toy item {key}" for key in keys], [None] * len(keys), users, sequences)


register_format(DatasetFormat("toy", read=read_toy, description="one user per line: `user: item item item`"))
'''

SUITE = """
name: toy-suite
datasets:
  - {{name: toy, format: toy, path: {path}}}
towers:
  - name: text-only
    text: {{preset: bert-tiny, weights: random, max_tokens: 8}}
methods: [lora]
train: {{batch_size: 4, max_seq_len: 5, epochs: 1, warmup_steps: 1, device: cpu}}
eval: {{enabled: true, ks: [5]}}
"""


def test_a_dataset_format_from_a_plugin_module_runs_a_cell(tmp_path, monkeypatch):
    (tmp_path / "toy_format.py").write_text(textwrap.dedent(TOY_FORMAT))
    data = tmp_path / "toy-data"
    data.mkdir()
    (data / "history.txt").write_text(
        "".join(f"u{u}: " + " ".join(f"i{(u + k) % 9}" for k in range(6)) + "\n" for u in range(12))
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(path=data))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the cell subprocess imports the plugin too
    monkeypatch.setenv("MMBENCH_PLUGINS", "toy_format")
    listed = CliRunner().invoke(app, ["list", "datasets", "--json"])
    assert "toy" in {entry["name"] for entry in json.loads(listed.stdout)}
    outcome = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "results"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    assert [cell["status"] for cell in json.loads(outcome.stdout)["cells"]] == ["ok"]
    row = read_results(tmp_path / "results")[0].row(0, named=True)
    assert row["dataset"] == "toy" and row["n_items"] == 9 and row["measured_steps"] == 2 and 0 <= row["test_hr@5"] <= 1


def test_a_plugin_that_does_not_import_is_one_clear_error(tmp_path, monkeypatch, write_suite):
    monkeypatch.setenv("MMBENCH_PLUGINS", "no_such_module_anywhere")
    outcome = CliRunner().invoke(app, ["list", "methods"])
    assert outcome.exit_code == 2 and "cannot import plugin module 'no_such_module_anywhere'" in outcome.stderr
    validated = CliRunner().invoke(app, ["validate", str(write_suite())])
    assert validated.exit_code == 2 and "MMBENCH_PLUGINS" in validated.stderr
