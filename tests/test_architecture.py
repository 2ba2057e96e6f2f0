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


TOY_MODALITY = '''
"""A toy modality: a glyph per item, drawn from its title's hash (no files), read by a ViT-shaped tower."""

import hashlib

import torch

from benchmark.models.presets_registry import get_preset, register_preset
from benchmark.modalities.registry import Modality, register_modality


@register_modality
class Glyph(Modality):
    name = "glyph"
    description = "a 16x16 glyph per item, drawn from its title"
    feature_keys = ("glyph",)
    seed_offset = 9
    takes_image_size = True

    def features(self, raw, tower, tower_config):
        glyphs = torch.zeros((raw.n_items + 1, 3, 16, 16), dtype=torch.uint8)
        for index, title in enumerate(raw.titles, start=1):
            seed = int(hashlib.sha256(title.encode()).hexdigest()[:8], 16)
            glyphs[index] = torch.randint(0, 256, (3, 16, 16), generator=torch.Generator().manual_seed(seed))
        return {"glyph": glyphs}

    def model_inputs(self, tower, features):
        glyph = features["glyph"].float().div(255.0)
        glyph = torch.nn.functional.interpolate(glyph, size=(tower.image_size, tower.image_size), mode="nearest")
        return {"pixel_values": (glyph - tower.image_mean) / tower.image_std}

    def input_shape(self, tower, tower_config):
        return f"glyph=16,pixels={tower.image_size}"


micro = get_preset("vit-micro")
register_preset(type(micro)(**{**micro.__dict__, "name": "glyph-micro", "modality": "glyph"}))
'''

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


def test_a_modality_from_a_plugin_module_runs_end_to_end_and_cached(tmp_path, monkeypatch):
    # The "add a modality" recipe: one module registers the modality (and a tower preset for it);
    # suites then name towers of that modality, cached side networks build and read its hidden states.
    (tmp_path / "toy_modality.py").write_text(textwrap.dedent(TOY_MODALITY))
    suite = tmp_path / "suite.yaml"
    suite.write_text(MODALITY_SUITE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("MMBENCH_PLUGINS", "toy_modality")
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
    assert rows["towers"].to_list() == ["text+glyph"] * 2 and rows["image_tower"].to_list() == [None, None]
    cached = rows.row(0, named=True)
    assert json.loads(cached["config_json"])["towers"]["glyph"]["preset"] == "glyph-micro"
    assert cached["cache_build_s"] is not None and cached["trainable_params"] > 0
