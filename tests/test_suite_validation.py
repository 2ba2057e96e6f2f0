from __future__ import annotations

import dataclasses

import pytest

from benchmark.catalog import method_options
from benchmark.errors import SuiteError
from benchmark.modalities.registry import modality_names
from benchmark.plan.loader import load_suite
from benchmark.suite.matrix import config_hash, expand_cells
from tests.conftest import ROOT

LORA_KEYS = "gradient_checkpointing, checkpoint_reentrant, fusion, r, alpha, dropout"


def problems_of(path) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    return caught.value.problems


def test_valid_suite_fills_defaults(write_suite):
    suite = load_suite(write_suite())
    assert suite.train.precision == "fp32"
    assert suite.train.lr == pytest.approx(1e-4)
    assert dataclasses.asdict(suite.methods[1].options) == {
        "gradient_checkpointing": False,  # every end-to-end method's
        "checkpoint_reentrant": False,
        "fusion": "concat",
        "r": 8,
        "alpha": 16,
        "dropout": 0.0,
    }
    assert suite.methods[0].label == "fft"


def test_malformed_yaml_names_file_and_line(write_suite, tmp_path):
    path = write_suite(text="name: x\ndatasets: [a, b\ntowers: []\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:")
    assert "malformed YAML" in problems[0]


def test_unknown_key_gets_did_you_mean_with_line(write_suite):
    path = write_suite()
    text = path.read_text().replace("  batch_size: 8", "  batch_sise: 8")
    path.write_text(text)
    line = text.splitlines().index("  batch_sise: 8") + 1
    problems = problems_of(path)
    assert problems == [f"{path}:{line}: train.batch_sise: unknown key (did you mean 'batch_size'?)"]


def test_every_problem_is_reported_at_once(write_suite):
    path = write_suite(methods="[fft, lorra, {name: lora, options: {rank: 4}}]")
    text = path.read_text().replace("preset: vit-micro", "preset: vit-mikro").replace("precision", "precision")
    text = text.replace("  warmup_steps: 1", "  warmup_steps: -1")
    path.write_text(text)
    problems = problems_of(path)
    joined = "\n".join(problems)
    assert "methods[1].name: unknown value 'lorra' (did you mean 'lora'?" in joined
    assert "towers[0].image.preset: unknown value 'vit-mikro' (did you mean 'vit-micro'?" in joined
    assert "train.warmup_steps: must be >= 0" in joined
    # A bad method option is listed with the structural problems elsewhere, not only once they are fixed.
    assert f"methods[2].options.rank: unknown key (known keys: {LORA_KEYS})" in joined
    assert len(problems) == 4


def test_unknown_method_option_and_duplicate_label(write_suite):
    path = write_suite(methods="[fft, {name: lora, options: {rank: 4}}, lora]")
    joined = "\n".join(problems_of(path))
    assert f"methods[1].options.rank: unknown key (known keys: {LORA_KEYS})" in joined
    assert "methods[2]: duplicate label 'lora'" in joined


def test_missing_local_weights_directory(write_suite, tmp_path):
    path = write_suite()
    path.write_text(path.read_text().replace("weights: random, max_tokens", "weights: ./no-such-model, max_tokens"))
    joined = "\n".join(problems_of(path))
    assert "towers[0].text.weights: local weights directory not found: ./no-such-model" in joined


def test_wrong_modality_preset(write_suite):
    path = write_suite()
    path.write_text(path.read_text().replace("preset: vit-micro", "preset: bert-tiny"))
    assert any("is a text tower, not image" in p for p in problems_of(path))


def test_matrix_expands_cells_and_validates_values(write_suite):
    path = write_suite()
    path.write_text(path.read_text() + "matrix:\n  train.batch_size: [4, 8]\n  train.precision: [fp32, bf16]\n")
    cells = expand_cells(load_suite(path))
    assert len(cells) == 2 * 2 * 2
    assert {c.config.train.batch_size for c in cells} == {4, 8}
    assert len({c.config_hash for c in cells}) == 8
    path.write_text(
        path.read_text().replace("[fp32, bf16]", "[fp32, fp8]").replace("train.batch_size", "train.batch_sise")
    )
    joined = "\n".join(problems_of(path))
    assert "unknown value 'fp8'" in joined and "did you mean 'train.batch_size'" in joined


def test_config_hash_ignores_suite_name_but_not_work(write_suite):
    cell = expand_cells(load_suite(write_suite()))[0]
    renamed = cell.config.replace(suite="other", cell_id="x")
    assert config_hash(renamed) == cell.config_hash
    changed = cell.config.replace(seed=1)
    assert config_hash(changed) != cell.config_hash


def test_overrides_apply_and_are_validated(write_suite):
    path = write_suite()
    suite = load_suite(path, ["train.max_steps=7", "eval.enabled=false"])
    assert suite.train.max_steps == 7 and suite.eval.enabled is False
    with pytest.raises(SuiteError):
        load_suite(path, ["train.precision=fp8"])
    with pytest.raises(SuiteError):
        load_suite(path, ["nonsense"])


def test_shipped_suites_validate():
    from pathlib import Path

    for suite in sorted(Path(__file__).resolve().parents[1].glob("suites/*.yaml")):
        assert expand_cells(load_suite(suite)), suite


def test_method_tower_filters_and_modality_rules(write_suite):
    path = write_suite(methods="[fft, iisan, {name: crossan, towers: [micro]}, {name: lora, towers: [mikro]}]")
    text = path.read_text().replace(
        "    image: {preset: vit-micro",
        "    video: {preset: videomae-micro, weights: random}\n    image: {preset: vit-micro",
    )
    path.write_text(text)
    joined = "\n".join(problems_of(path))
    assert "methods[1]: method 'iisan' uses only ['text', 'image'] towers, not ['video'] in tower set 'micro'" in joined
    assert "methods[3].towers[0]: unknown tower set 'mikro' (did you mean 'micro'?)" in joined
    assert "crossan" not in joined  # three towers: fine for CROSSAN


def test_tower_filter_limits_cells(write_suite):
    path = write_suite(methods="[fft, {name: lora, towers: [other]}]")
    path.write_text(
        path.read_text().replace("towers:\n", "towers:\n  - name: other\n    text: {preset: bert-tiny}\n", 1)
    )
    cells = [cell.cell_id for cell in expand_cells(load_suite(path))]
    assert cells == ["synth/other/fft/seed=0", "synth/other/lora/seed=0", "synth/micro/fft/seed=0"]


def test_readme_suite_example_is_valid(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("## Suite format", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    cells = expand_cells(load_suite(path))
    assert len(cells) == 7 * 2 * 3 and {c.config.train.batch_size for c in cells} == {16, 32}
    assert {c.config.method.base_precision for c in cells} == {None, "nf4"}


def test_a_tower_set_holds_only_its_towers_and_a_null_modality_is_absent(write_suite):
    # A tower set's towers are one entry per registered modality, written flat in the YAML; an absent
    # (or null) modality is not in the cell's JSON, so registering a new modality changes no config hash.
    plain = write_suite().read_text()
    with_null = write_suite(text=plain.replace("    image: {preset", "    video: null\n    image: {preset"))
    cells, cells_with_null = (expand_cells(load_suite(path)) for path in (write_suite(), with_null))
    towers = cells[0].config.to_dict()["towers"]
    assert towers == {
        "name": "micro",
        "text": {"preset": "bert-tiny", "weights": "random", "revision": None, "max_tokens": 8, "image_size": None},
        "image": {"preset": "vit-micro", "weights": "random", "revision": None, "max_tokens": 30, "image_size": 16},
    }
    assert [c.config_hash for c in cells] == [c.config_hash for c in cells_with_null]
    assert list(cells[0].config.towers.present(modality_names())) == ["text", "image"]
    assert type(cells[0].config).from_dict(cells[0].config.to_dict(), method_options) == cells[0].config


@pytest.mark.parametrize("override", ["train.batch_size=0", "train.batch_size=-3", "train.epochs=0"])
def test_an_out_of_range_step_setting_is_one_problem_not_a_traceback(override):
    # Before: `--set train.batch_size=0` ended in ZeroDivisionError from the data checks; -3 added a second,
    # confusing problem ("-32 step(s) per epoch").
    with pytest.raises(SuiteError) as raised:
        load_suite("smoke", [override])
    key, value = override.split("=")
    where = f"{ROOT / 'suites' / 'smoke.yaml'}:{_line_of(key)}"
    assert raised.value.problems == [f"{where}: {key}: must be >= 1, got {value}"]


def _line_of(key: str) -> int:
    name = key.split(".")[1]
    lines = (ROOT / "suites" / "smoke.yaml").read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if line.strip().startswith(f"{name}:"))
