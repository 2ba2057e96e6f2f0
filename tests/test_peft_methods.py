"""Any PEFT method by its own peft config (`{name: peft, options: {type, config}}`): each of the methods users ask
about adapts the tiny towers and trains; bad types and arguments are problems at the suite's line."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import SuiteError, TowerError
from benchmark.methods.registry import get_method_class
from benchmark.models.towers import build_tower, count_parameters
from benchmark.plan.loader import load_suite
from benchmark.suite.matrix import config_id, expand_cells
from tests.conftest import TINY_SUITE

TYPES = {
    "LORA": {},
    "DORA": {},
    "RSLORA": {},
    "IA3": {},
    "LOHA": {},
    "LOKR": {},
    "VERA": {"r": 4},
    "OFT": {},
    "BOFT": {"boft_block_size": 4},
}


def _towers() -> dict:
    torch.manual_seed(0)
    return {
        "text": build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        "image": build_tower("image", {"preset": "vit-micro", "weights": "random", "image_size": 16}),
    }


def _features(count: int = 3) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 100, (count, 8))
    return {"text_ids": ids, "text_mask": torch.ones_like(ids), "pixels": torch.randint(0, 255, (count, 3, 16, 16))}


def _adapt(peft_type: str, config: dict) -> tuple[torch.nn.Module, dict]:
    towers = _towers()
    encoder = get_method_class("peft")({"type": peft_type, "config": config}).build_item_encoder(towers, 16)
    return encoder, towers


@pytest.mark.parametrize("peft_type", list(TYPES))
def test_each_peft_method_adapts_the_towers_and_trains_only_its_own_parameters(peft_type):
    encoder, towers = _adapt(peft_type, TYPES[peft_type])
    for modality, tower in towers.items():
        trainable, total = count_parameters(tower)
        assert 0 < trainable < total / 4, f"{peft_type} {modality}: {trainable} of {total} train"
    features = {key: value for key, value in _features().items()}
    features = {**features, "pixels": features["pixels"].to(torch.uint8)}
    prepared = features
    for module in encoder.modules():
        if callable(getattr(module, "prepare_inputs", None)):
            prepared = module.prepare_inputs(prepared, torch.float32)
    encoder(prepared).sum().backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert all(p.grad is None for p in encoder.parameters() if not p.requires_grad)


def test_dora_and_rslora_are_lora_with_their_flag():
    lora, _ = _adapt("LORA", {})
    dora, _ = _adapt("DORA", {})
    assert count_parameters(dora)[0] > count_parameters(lora)[0]  # DoRA adds a magnitude vector per layer
    rslora, towers = _adapt("rslora", {"r": 8, "lora_alpha": 16})
    config = towers["text"].model.peft_config["default"]
    assert config.use_rslora and config.target_modules == {"query", "value"}


def test_a_method_peft_cannot_apply_to_a_tower_says_which(tmp_path):
    # Llama's projection names: BERT has no `q_proj`, and peft says so for this tower.
    with pytest.raises(TowerError, match=r"peft LORA cannot adapt the text tower 'bert-tiny': .*q_proj"):
        _adapt("LORA", {"target_modules": ["q_proj"]})


def _suite(tmp_path, options: str):
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE.format(methods=f"[{{name: peft, options: {options}}}]", max_steps=3, eval="false"))
    return path


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("{type: DORAA}", "methods[0].options.type: unknown peft type 'DORAA' (did you mean 'DORA'? known:"),
        ("{type: PREFIX_TUNING}", "methods[0].options.type: PREFIX_TUNING is prompt learning"),
        ("{type: LORA, config: {rr: 8}}", "methods[0].options.config: LoraConfig: "),
        ("{type: IA3, config: {target_modules: [query], feedforward_modules: [value]}}", "methods[0].options.config"),
    ],
)
def test_a_bad_peft_type_or_argument_is_one_problem_at_its_line(tmp_path, options, expected):
    suite = _suite(tmp_path, options)
    with pytest.raises(SuiteError) as raised:
        load_suite(suite)
    assert len(raised.value.problems) == 1
    problem = " ".join(raised.value.problems[0].split())
    assert problem.startswith(f"{suite}:") and expected in problem


def test_the_lora_method_keeps_its_config_ids(write_suite):
    # The generic method is a new name: `lora` cells are the same configurations as before it existed.
    lora = expand_cells(load_suite(write_suite("[lora]")))[0]
    assert lora.config.method.name == "lora" and config_id(lora.config) == config_id(lora.config.to_dict())
    same_work = expand_cells(load_suite(write_suite("[{name: peft, options: {type: LORA}}]")))[0]
    assert config_id(same_work.config) != config_id(lora.config)  # another method name: another configuration


@pytest.mark.slow
def test_a_peft_cell_runs_and_counts_what_the_wrapped_model_trains(tmp_path):
    from benchmark.results.read import read_results

    suite = _suite(tmp_path, "{type: IA3}")
    outcome = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "r"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    row = read_results(tmp_path / "r")[0].row(0, named=True)
    assert row["status"] == "ok" and row["method"] == "peft"
    assert 0 < row["trainable_params"] < row["total_params"] / 10
