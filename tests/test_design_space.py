"""The design space as suite axes (issue 27): sequence models and training objectives, each registered by name, run
end to end on the CPU, validated with did-you-mean, and recorded in the cell's configuration; existing ids stay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import SuiteError
from benchmark.plan.loader import load_suite
from benchmark.results.schema import empty_row
from benchmark.suite.config import TrainConfig
from benchmark.suite.matrix import config_id, expand_cells
from benchmark.train.loop import objective_of, run_cell, sequence_model_of
from benchmark.train.objectives.registry import IGNORED, StepScores, get_objective
from tests.conftest import TINY_SUITE


def _suite(tmp_path, train: str = "", matrix: str = "", methods: str = "[iisan]"):
    text = TINY_SUITE.format(methods=methods, max_steps=3, eval="false").replace("train:\n", "train:\n" + train)
    if matrix:
        text = text.replace("seeds: [0]", f"matrix:\n{matrix}seeds: [0]")
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_every_sequence_model_and_objective_is_a_cell_with_its_own_options_in_the_config(tmp_path):
    matrix = (
        "  train.sequence_model: [sasrec, gru4rec, nextitnet]\n"
        "  train.objective: [softmax, sampled_softmax, bce, bpr]\n"
    )
    options = "  sequence_options: {nextitnet: {dilations: [1, 4]}}\n  objective_options: {bce: {negatives: 3}}\n"
    cells = expand_cells(load_suite(_suite(tmp_path, options, matrix)))
    assert len(cells) == 12 and len({config_id(cell.config) for cell in cells}) == 12
    for cell in cells:
        train = cell.config.train
        assert f"sequence_model={train.sequence_model}" in cell.cell_id
        expected_sequence = {
            "sasrec": {},
            "gru4rec": {"gru4rec": {"layers": 1}},
            "nextitnet": {"nextitnet": {"kernel_size": 3, "dilations": [1, 4]}},
        }[train.sequence_model]
        expected_objective = {
            "softmax": {},
            "sampled_softmax": {"sampled_softmax": {"negatives": 64}},
            "bce": {"bce": {"negatives": 3}},
            "bpr": {"bpr": {"negatives": 1}},
        }[train.objective]
        assert train.sequence_options == expected_sequence and train.objective_options == expected_objective
        plain = json.loads(json.dumps(cell.config.to_dict()))
        assert plain["train"]["sequence_model"] == train.sequence_model


def _run(config) -> dict:
    row = empty_row()
    run_cell(config, row, lambda event: None)
    losses = row["train_loss"]
    assert len(losses) == 3 and all(loss == loss and loss > 0 for loss in losses), config.cell_id
    return row


def test_a_cell_per_sequence_model_objective_fusion_and_noise_trains_end_to_end(tmp_path):
    """Every option of the design space, one cell each: the three sequence models (each with a sampled objective),
    every fusion under IISAN (three paths) or LoRA (two towers), and a noisy dataset."""
    matrix = (
        "  train.sequence_model: [sasrec, gru4rec, nextitnet]\n  train.objective: [sampled_softmax, bce, bpr, guider]\n"
    )
    for cell in expand_cells(load_suite(_suite(tmp_path, "", matrix))):
        train = cell.config.train
        if (train.sequence_model, train.objective) in {
            ("sasrec", "sampled_softmax"),
            ("gru4rec", "bce"),
            ("nextitnet", "bpr"),
        }:
            assert _run(cell.config)["flops_user"] > 0  # the user encoder's work is in the cost breakdown
    fusions = ["concat", "sum", "gated", "film", "mlp", "co_attention", "merged_attention", "momef"]
    methods = ", ".join(
        f"{{name: {'iisan' if index % 2 else 'lora'}, label: {name}, options: {{fusion: {name}}}}}"
        for index, name in enumerate(fusions)
    )
    rows = {
        cell.config.method.label: _run(cell.config)
        for cell in expand_cells(load_suite(_suite(tmp_path, "", "", f"[{methods}]")))
    }
    assert set(rows) == set(fusions)
    noisy = _suite(tmp_path).read_text().replace("format: synthetic", "format: synthetic\n    noise: 0.2")
    (tmp_path / "suite.yaml").write_text(noisy)
    _run(expand_cells(load_suite(tmp_path / "suite.yaml"))[0].config)


def test_cells_of_the_default_sequence_model_and_objective_keep_their_ids(tmp_path):
    plain = expand_cells(load_suite(_suite(tmp_path)))[0]
    explicit = expand_cells(
        load_suite(
            _suite(
                tmp_path,
                "  sequence_model: sasrec\n  objective: softmax\n"
                "  sequence_options: {nextitnet: {kernel_size: 2}}\n  objective_options: {bpr: {negatives: 2}}\n",
            )
        )
    )[0]
    assert config_id(plain.config) == config_id(explicit.config)  # options for another choice change nothing
    assert explicit.config.train.sequence_options == {} and explicit.config.train.objective_options == {}


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("  sequence_model: gru4recc\n", "train.sequence_model: unknown value 'gru4recc' (did you mean 'gru4rec'?"),
        ("  objective: bprr\n", "train.objective: unknown value 'bprr' (did you mean 'bpr'?"),
        (
            "  sequence_model: nextitnet\n  sequence_options: {nextitnet: {dilation: [1]}}\n",
            "train.sequence_options.nextitnet.dilation: unknown key (did you mean 'dilations'?)",
        ),
        (
            "  sequence_options: {nextitnett: {}}\n",
            "train.sequence_options.nextitnett: unknown sequence model 'nextitnett' (did you mean 'nextitnet'?",
        ),
        (
            "  objective: bce\n  objective_options: {bce: {negatives: 0}}\n",
            "train.objective_options.bce.negatives: must be >= 1, got 0",
        ),
    ],
)
def test_bad_choices_and_options_are_named_at_their_line(tmp_path, train, message):
    with pytest.raises(SuiteError) as raised:
        load_suite(_suite(tmp_path, train))
    assert message in str(raised.value)
    assert f"{tmp_path / 'suite.yaml'}:" in str(raised.value)


def test_options_for_a_choice_no_cell_makes_are_a_warning(tmp_path):
    warnings: list[str] = []
    load_suite(_suite(tmp_path, "  sequence_options: {gru4rec: {layers: 2}}\n"), warnings=warnings)
    assert any("train.sequence_options.gru4rec: no cell uses sequence_model 'gru4rec'" in w for w in warnings)


def _train(**changes: object) -> TrainConfig:
    return TrainConfig(embed_dim=8, max_seq_len=6, dropout=0.0, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "options"), [("sasrec", {}), ("gru4rec", {"gru4rec": {"layers": 2}}), ("nextitnet", {})]
)
def test_sequence_models_are_causal_and_the_recurrent_and_convolutional_ignore_left_padding(name, options):
    torch.manual_seed(0)
    encoder = sequence_model_of(_train(sequence_model=name, sequence_options=options)).eval()
    items = torch.randn(1, 6, 8)
    valid = torch.tensor([[False, False, True, True, True, True]])
    states = encoder(items * valid.unsqueeze(-1), valid)
    if name != "sasrec":  # SASRec's learned positions count from the left edge: padding moves them, by design
        # The same history without its padding: the last state (the user's) is the same.
        shorter = encoder(items[:, 2:], valid[:, 2:])
        assert torch.allclose(states[:, -1], shorter[:, -1], atol=1e-5)
    # A later item never changes an earlier position's state.
    changed = items.clone()
    changed[:, -1] = torch.randn(8)
    later = encoder(changed * valid.unsqueeze(-1), valid)
    assert torch.allclose(states[:, :-1], later[:, :-1], atol=1e-6) and not torch.allclose(states[:, -1], later[:, -1])


def _scores(labels: list[list[int]], encoded: list[int], sequences: list[list[int]]) -> StepScores:
    torch.manual_seed(0)
    batch, length = len(labels), len(labels[0])
    return StepScores(
        torch.randn(batch, length, 4, requires_grad=True),
        torch.randn(len(encoded), 4, requires_grad=True),
        torch.tensor(labels),
        torch.tensor(encoded),
        torch.tensor(sequences),
        None,
    )


@pytest.mark.parametrize("name", ["softmax", "sampled_softmax", "bce", "bpr", "guider"])
def test_objectives_give_a_finite_loss_with_gradients_and_skip_padding(name):
    scores = _scores([[1, 2], [IGNORED, 3]], [0, 5, 6, 7, 8], [[5, 6, 7], [0, 7, 8]])
    loss = get_objective(name)({} if name == "softmax" else {"negatives": 16}).loss(scores)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert scores.users.grad is not None and scores.users.grad[1, 0].abs().sum() == 0  # the padded position


@pytest.mark.parametrize("name", ["sampled_softmax", "bce", "bpr", "guider"])
def test_a_drawn_negative_that_is_the_target_or_the_users_own_item_counts_for_nothing(name):
    # Every candidate but padding is the user's own item: no draw is a usable negative.
    scores = _scores([[1, 2]], [0, 5, 6], [[5, 6, 5]])
    objective = get_objective(name)({"negatives": 8, **({"ot_weight": 0.0} if name == "guider" else {})})
    loss = objective.loss(scores)
    if name in ("bpr", "guider"):
        assert loss == 0  # no usable pair
    elif name == "sampled_softmax":
        assert torch.allclose(loss, torch.tensor(0.0))  # the target alone: log(1) = 0
    else:  # bce: the positive terms only
        positive = (scores.users[0] * scores.candidates[torch.tensor([1, 2])]).sum(-1)
        assert torch.allclose(loss, torch.nn.functional.softplus(-positive).sum() / 2)


def test_the_objective_is_built_with_its_options():
    objective = objective_of(_train(objective="bce", objective_options={"bce": {"negatives": 5}}))
    assert objective.name == "bce" and objective.options.negatives == 5


def test_list_shows_sequence_models_and_objectives():
    runner = CliRunner()
    models = json.loads(runner.invoke(app, ["list", "sequence-models", "--json"]).stdout)
    assert {entry["name"] for entry in models} >= {"sasrec", "gru4rec", "nextitnet"}
    assert next(e for e in models if e["name"] == "nextitnet")["options"] == {"kernel_size": 3, "dilations": [1, 2]}
    objectives = json.loads(runner.invoke(app, ["list", "objectives", "--json"]).stdout)
    assert {entry["name"] for entry in objectives} >= {"softmax", "sampled_softmax", "bce", "bpr"}
    assert all(entry["origin"] == "built in" for entry in models + objectives)


def test_noise_replaces_that_fraction_of_training_interactions_and_leaves_evaluation_clean():
    from benchmark.data.noise import inject_noise
    from benchmark.data.raw import RawDataset

    generator = np.random.default_rng(3)
    sequences = [generator.integers(1, 201, size=int(generator.integers(4, 30))).tolist() for _ in range(2000)]
    raw = RawDataset("test", [str(i) for i in range(200)], [""] * 200, [str(u) for u in range(2000)], sequences)
    assert inject_noise(raw, 0.0, 0) is raw
    noisy = inject_noise(raw, 0.2, 0)
    assert noisy.sequences == inject_noise(raw, 0.2, 0).sequences  # seeded: the same noisy data every time
    assert noisy.sequences != inject_noise(raw, 0.2, 1).sequences
    changed = trained = 0
    for before, after in zip(raw.sequences, noisy.sequences):
        assert len(before) == len(after) and before[-2:] == after[-2:]  # validation and test targets stay
        assert all(1 <= item <= 200 for item in after)
        trained += len(before) - 2
        changed += sum(a != b for a, b in zip(before[:-2], after[:-2]))
    assert 0.19 < changed / trained < 0.21  # a replacement is always another item


def test_a_noisy_dataset_is_recorded_in_the_config_and_trains_on_noisy_histories(tmp_path):
    from benchmark.train.cell_plan import read_data

    clean = expand_cells(load_suite(_suite(tmp_path)))[0].config
    text = _suite(tmp_path).read_text().replace("format: synthetic", "format: synthetic\n    noise: 0.3")
    (tmp_path / "suite.yaml").write_text(text)
    noisy = expand_cells(load_suite(tmp_path / "suite.yaml"))[0].config
    assert noisy.dataset.noise == 0.3 and config_id(noisy) != config_id(clean)
    explicit = text.replace("noise: 0.3", "noise: 0.0\n    noise_seed: 5")
    (tmp_path / "suite.yaml").write_text(explicit)
    assert config_id(expand_cells(load_suite(tmp_path / "suite.yaml"))[0].config) == config_id(clean)
    clean_raw, noisy_raw = read_data(clean).raw, read_data(noisy).raw
    assert clean_raw.fingerprint() == noisy_raw.fingerprint()  # item content, and so the caches, unchanged
    assert clean_raw.sequences != noisy_raw.sequences


@pytest.mark.parametrize("name", ["concat", "sum", "gated", "film", "mlp", "co_attention", "merged_attention", "momef"])
def test_every_fusion_makes_one_item_vector_of_parts_of_any_width_and_trains_each_part(name):
    from benchmark.methods.fusions.registry import build_fusion

    torch.manual_seed(0)
    fusion = build_fusion(name, [6, 10, 4], 8, 16)
    parts = [torch.randn(5, width, requires_grad=True) for width in (6, 10, 4)]
    fused = fusion(parts)
    assert fused.shape == (5, 8)
    fused.square().sum().backward()
    assert all(part.grad is not None and part.grad.abs().sum() > 0 for part in parts)
    assert build_fusion(name, [8], 8)([torch.randn(3, 8)]).shape == (3, 8)  # one part fuses too


def test_fusion_is_an_option_of_every_fusing_method_with_existing_ids_unchanged(tmp_path):
    methods = (
        "[lora, iisan, {name: lora, label: lora-gated, options: {fusion: gated}}, "
        "{name: iisan, label: iisan-film, options: {fusion: film}}, iisan_versa, crossan]"
    )
    cells = expand_cells(load_suite(_suite(tmp_path, methods=methods)))
    by_label = {cell.config.method.label: cell.config for cell in cells}
    explicit = "[{name: lora, options: {fusion: concat}}, {name: iisan, options: {fusion: concat}}]"
    same = {c.config.method.label: c.config for c in expand_cells(load_suite(_suite(tmp_path, methods=explicit)))}
    assert config_id(same["lora"]) == config_id(by_label["lora"]) and config_id(same["iisan"]) == config_id(
        by_label["iisan"]
    )
    assert config_id(by_label["lora-gated"]) != config_id(by_label["lora"])
    assert by_label["crossan"].method.options.fusion == "momef"  # its own default, hashed as before
    with pytest.raises(
        SuiteError, match=r"methods\[0\]\.options\.fusion: unknown value 'gatd' \(did you mean 'gated'\?"
    ):
        load_suite(_suite(tmp_path, methods="[{name: adapter, options: {fusion: gatd}}]"))


def test_list_shows_fusions():
    entries = json.loads(CliRunner().invoke(app, ["list", "fusions", "--json"]).stdout)
    assert {entry["name"] for entry in entries} == {
        "concat",
        "sum",
        "gated",
        "film",
        "mlp",
        "co_attention",
        "merged_attention",
        "momef",
    }


def test_guider_weighs_an_interaction_unlike_its_history_down():
    from benchmark.train.objectives.guider import interaction_weights

    history = torch.tensor([[[1.0, 0.0], [1.0, 0.1], [0.9, 0.0]], [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    candidates = torch.tensor([[0.0, 0.0], [1.0, 0.05], [-1.0, 0.2], [0.95, 0.0]])
    labels = torch.tensor([[1, 2, 3], [IGNORED, 1, 2]])
    scores = StepScores(
        history, candidates, labels, torch.arange(4), torch.zeros(2, 4, dtype=torch.long), None, history
    )
    weights = interaction_weights(scores, temperature=0.05)
    assert weights[1, 0] == 0  # padding
    assert torch.isclose(weights[scores.predicting].mean(), torch.tensor(1.0))
    # Item 2 points away from every history: the weakest interactions, in both users' sequences.
    assert weights[0, 1] < weights[0, 0] and weights[1, 2] < weights[1, 1]


def test_sinkhorn_distance_is_small_for_matching_sets_and_ignores_massless_rows():
    from benchmark.train.objectives.guider import sinkhorn_distance

    torch.manual_seed(0)
    points = torch.randn(6, 4)
    mass = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0, 0.0])
    same = sinkhorn_distance(points, points, mass, 0.01, 100)
    shuffled = sinkhorn_distance(points, points[torch.tensor([1, 0, 3, 2, 4, 5])], mass, 0.01, 100)
    opposite = sinkhorn_distance(points, -points, mass, 0.01, 100)
    assert torch.isfinite(same) and same < 0.05 and shuffled < 0.05  # a permutation costs nothing to transport
    # Mirrored points cannot all be matched to a point they align with: the transport costs.
    assert opposite > 0.3


def test_the_design_space_suite_crosses_sequence_models_objectives_and_fusions():
    from tests.conftest import ROOT

    cells = expand_cells(load_suite(ROOT / "suites" / "design-space.yaml"))
    assert len(cells) == 24
    assert {c.config.train.sequence_model for c in cells} == {"sasrec", "gru4rec", "nextitnet"}
    assert {c.config.train.objective for c in cells} == {"softmax", "guider"}
    assert {c.config.method.options.fusion for c in cells} == {"concat", "gated"}
    assert {c.config.method.name for c in cells} == {"lora", "iisan"}


def test_bert4rec_masks_real_positions_for_training_and_appends_a_mask_for_the_users_state():
    torch.manual_seed(0)
    encoder = sequence_model_of(
        _train(sequence_model="bert4rec", sequence_options={"bert4rec": {"mask_probability": 0.5}})
    )
    position_index = torch.tensor([[-1, -1, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11]] * 50)  # [100, L+1 = 7]
    embeddings = torch.randn(100, 7, 8) * (position_index >= 0).unsqueeze(-1)
    states, labels, inputs = encoder(embeddings, position_index >= 0, position_index)
    masked = labels != IGNORED
    assert states.shape == (100, 7, 8) and not masked[position_index < 0].any()  # padding is never a target
    assert torch.equal(labels[masked], position_index[masked])  # a masked position predicts its own item
    share = masked.sum() / (position_index >= 0).sum()
    assert 0.4 < share < 0.6
    assert torch.allclose(inputs[masked], encoder.mask.expand(int(masked.sum()), -1))
    encoder.eval()
    history, valid = embeddings[:2, :-1], position_index[:2, :-1] >= 0
    user = encoder(history, valid)
    assert user.shape == (2, 6, 8)
    changed = history.clone()
    changed[1, 0] = torch.randn(8)  # the first item: a bidirectional encoder's user state sees it
    assert not torch.allclose(encoder(changed, valid)[1, -1], user[1, -1])
