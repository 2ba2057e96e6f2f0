"""The extension examples of docs/extending.md (examples/plugins/), each installed as a plug-in the way a user
would (MMBENCH_PLUGINS names the module, PYTHONPATH finds it, cell subprocesses inherit both) and run: a dataset
format and a modality each run cells; a method, a tower preset, a launcher and a report writer run one suite
together and report it. Adding each kind of extension is one file: these are those files."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark import plugins
from benchmark.cli import app
from benchmark.formats.registry import FORMATS
from benchmark.launch.launchers import LAUNCHERS
from benchmark.methods.registry import METHODS
from benchmark.modalities.registry import MODALITIES
from benchmark.models.presets_registry import PRESETS, preset_names
from benchmark.report.writers import REPORT_WRITERS
from benchmark.results.read import read_results

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "plugins"
KINDS = {  # extension kind -> its example module
    "dataset format": "toy_format",
    "modality": "glyph_modality",
    "method": "top_layers_method",
    "tower preset": "mini_text_preset",
    "launcher": "shard_launcher",
    "report writer": "latex_report",
}


@pytest.fixture(autouse=True)
def registries_as_before(monkeypatch):
    """What an example registers is gone after its test (the registries, the plug-ins loaded, the modules), so
    that no later test sees a `shard` launcher or a `glyph` modality."""
    preset_names()  # the shipped presets registered first, so that they stay
    for registry in (METHODS, FORMATS, MODALITIES, PRESETS, LAUNCHERS, REPORT_WRITERS):
        registry.names(plugins=False)  # the built-ins registered first, so that they stay
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_origins", dict(registry._origins))
    monkeypatch.setattr(plugins, "_loaded", set(plugins._loaded))
    yield
    for module in KINDS.values():
        sys.modules.pop(module, None)


def install_example(monkeypatch, *modules: str) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLES))  # the cell subprocesses import the plug-ins too
    monkeypatch.setenv("MMBENCH_PLUGINS", ",".join(modules))


def test_every_extension_kind_has_one_example_file_and_docs_that_name_it():
    guide = (EXAMPLES.parents[1] / "docs" / "extending.md").read_text()
    for kind, module in KINDS.items():
        assert (EXAMPLES / f"{module}.py").is_file(), kind
        assert f"examples/plugins/{module}.py" in guide, kind


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
    data = tmp_path / "toy-data"
    data.mkdir()
    (data / "history.txt").write_text(
        "".join(f"u{u}: " + " ".join(f"i{(u + k) % 9}" for k in range(6)) + "\n" for u in range(12))
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(path=data))
    install_example(monkeypatch, "toy_format")
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


MODALITY_SUITE = """
name: glyph-suite
datasets:
  - {name: synth, format: synthetic, options: {users: 48, items: 30}}
towers:
  - name: text+glyph
    text: {preset: bert-tiny, weights: random, max_tokens: 8}
    glyph: {preset: glyph-micro}
methods: [lora, crossan_cached]
train: {batch_size: 8, max_seq_len: 5, epochs: 1, max_steps: 3, warmup_steps: 1, device: cpu}
eval: {enabled: true, ks: [5]}
"""


@pytest.mark.slow  # real cells in subprocesses (15-20 s): CI runs it with the slow tests
def test_a_modality_from_a_plugin_module_runs_end_to_end_and_cached(tmp_path, monkeypatch):
    # The "add a modality" recipe: one module registers the modality (and a tower preset for it);
    # suites then name towers of that modality, cached side networks build and read its hidden states.
    suite = tmp_path / "suite.yaml"
    suite.write_text(MODALITY_SUITE)
    install_example(monkeypatch, "glyph_modality")
    listed = CliRunner().invoke(app, ["list", "modalities", "--json"])
    assert [entry["name"] for entry in json.loads(listed.stdout)] == ["text", "image", "video", "audio", "glyph"]
    typo = tmp_path / "typo.yaml"
    typo.write_text(MODALITY_SUITE.replace("glyph: {preset", "glyf: {preset"))
    refused = CliRunner().invoke(app, ["validate", str(typo)])
    assert refused.exit_code == 2 and "towers[0].glyf: unknown key (did you mean 'glyph'?)" in refused.stderr
    outcome = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "results"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    assert [cell["status"] for cell in json.loads(outcome.stdout)["cells"]] == ["ok", "ok"]
    rows = read_results(tmp_path / "results")[0].sort("method")
    assert rows["method"].to_list() == ["crossan_cached", "lora"]
    assert rows["towers"].to_list() == ["text+glyph"] * 2
    # Per-modality columns follow the registry: the plug-in's modality has its column, a modality no row uses has none
    # (before schema 7: four fixed columns, `image_tower` all null and the glyph tower in none).
    assert rows["glyph_tower"].to_list() == ["glyph-micro"] * 2 and rows["text_tower"].n_unique() == 1
    assert "image_tower" not in rows.columns and "tower_presets" in rows.columns
    cached = rows.row(0, named=True)
    assert json.loads(cached["config_json"])["towers"]["glyph"]["preset"] == "glyph-micro"
    assert cached["cache_build_s"] is not None and cached["trainable_params"] > 0


FOUR_KINDS_SUITE = """
name: four-kinds
datasets:
  - {name: synth, format: synthetic, options: {users: 40, items: 24}}
towers:
  - name: mini
    text: {preset: bert-mini-2l, weights: random, max_tokens: 8}
methods:
  - {name: top_layers, options: {layers: 1}}
  - lora
train: {batch_size: 8, max_seq_len: 5, epochs: 1, max_steps: 3, warmup_steps: 1, device: cpu}
eval: {enabled: false}
"""


def test_a_method_a_preset_a_launcher_and_a_report_writer_from_their_example_files(tmp_path, monkeypatch):
    install_example(monkeypatch, "top_layers_method", "mini_text_preset", "shard_launcher", "latex_report")
    suite = tmp_path / "suite.yaml"
    suite.write_text(FOUR_KINDS_SUITE)
    runner = CliRunner()
    listed = {what: runner.invoke(app, ["list", what, "--json"]) for what in ("methods", "towers", "launchers")}
    assert "top_layers" in {entry["name"] for entry in json.loads(listed["methods"].stdout)}
    assert "bert-mini-2l" in {entry["name"] for entry in json.loads(listed["towers"].stdout)}
    shard = {"name": "shard", "options": ["shard"], "origin": "MMBENCH_PLUGINS module shard_launcher"}
    assert shard in json.loads(listed["launchers"].stdout)
    refused = runner.invoke(app, ["run", str(suite), "--launcher", "shard", "--launcher-option", "shard=2/2"])
    assert refused.exit_code == 2 and "shard=2/2: expected I/N with 0 <= I < N" in refused.stderr
    results = str(tmp_path / "results")
    first = ["run", str(suite), "--results", results, "--launcher", "shard", "--json"]
    shards = [runner.invoke(app, [*first, "--launcher-option", f"shard={index}/2"]) for index in (0, 1)]
    assert [shard.exit_code for shard in shards] == [0, 0], [shard.output for shard in shards]
    ran = [[cell["cell_id"].split("/")[2] for cell in json.loads(shard.stdout)["cells"]] for shard in shards]
    assert sorted(ran[0] + ran[1]) == ["lora", "top_layers"]  # each cell in exactly one shard
    rows = read_results(tmp_path / "results")[0]
    assert set(rows["launcher"]) == {"shard"}
    row = rows.filter(rows["method"] == "top_layers").row(0, named=True)
    assert row["text_tower"] == "bert-mini-2l" and json.loads(row["config_json"])["method"]["options"] == {"layers": 1}
    # One of the two blocks of the 64-wide tower trains, beside the heads: more than a block's parameters, fewer
    # than the tower's embeddings (30522 x 64) that full fine-tuning would train.
    block = 4 * (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64) + 4 * 64
    assert block < row["trainable_params"] < 30522 * 64
    latex = runner.invoke(app, ["report", "--results", results, "--format", "latex"])
    assert latex.exit_code == 0, latex.output
    assert latex.stdout.startswith("\\begin{tabular}") and latex.stdout.rstrip().endswith("\\end{tabular}")
    assert re.search(r"^top\\_layers & [\d,]+ & [\d.]+ & ", latex.stdout, re.MULTILINE), latex.stdout
