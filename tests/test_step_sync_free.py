"""The training step never makes the host wait for the device, and its shapes do not depend on the batch.

Issue 23: four host-device synchronisations sat in the loss (boolean-mask indexing and its backward), so on a GPU
the host waited for both towers before it could queue the rest of the step. The operator census counts them on a
CPU; on a GPU `torch.cuda.set_sync_debug_mode("error")` proves the same (GPU-marked test).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.data.collate import ITEM_BUCKET, collate_train_batch
from benchmark.data.dataset import ItemFeatures
from benchmark.plan.loader import load_suite
from benchmark.profile.op_census import OpCensus
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import config_id, expand_cells
from benchmark.train.loop import run_cell
from benchmark.train.recommender import Recommender


def boolean_mask_loss(model: Recommender, sequences, features, encoded_ids, position_index) -> torch.Tensor:
    """The loss as mmbench computed it before issue 23 (boolean-mask indexing), kept as the reference it must equal."""
    candidates = model.item_encoder(features)
    embeddings = candidates[position_index.clamp(min=0)] * (position_index >= 0).unsqueeze(-1)
    inputs, targets = sequences[:, :-1], sequences[:, 1:]
    valid_input = inputs > 0
    users = model.user_encoder(embeddings[:, :-1], valid_input)
    predict = valid_input & (targets > 0)
    query = users[predict]
    label = position_index[:, 1:][predict]
    logits = query @ candidates.T
    if model.log_item_probability is not None:
        logits = logits - model.log_item_probability[encoded_ids].unsqueeze(0)
    row_of = torch.arange(sequences.shape[0]).unsqueeze(1).expand_as(targets)[predict]
    in_history = (encoded_ids.view(1, 1, -1) == sequences.unsqueeze(-1)).any(dim=1)
    mask = in_history[row_of]
    mask[torch.arange(len(label)), label] = False
    return F.cross_entropy(logits.float().masked_fill(mask, float("-inf")), label)


class LookupEncoder(torch.nn.Module):
    def __init__(self, items: int, dim: int):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(items, dim))

    def forward(self, features):
        return self.table[features["ids"]] * 1.0


SEQUENCES = torch.tensor([[0, 0, 0, 1, 2, 1], [3, 4, 5, 6, 7, 8], [0, 9, 2, 10, 11, 3]])


def _model(logq: bool) -> Recommender:
    torch.manual_seed(0)
    log_p = torch.log(torch.linspace(0.01, 0.2, 12)) if logq else None
    return Recommender(LookupEncoder(12, 8), 8, 5, 1, 2, 0.0, log_p).eval()


def _loss(model, batch, loss=None):
    loss = loss or model.training_loss
    return loss(batch.sequences, batch.features, batch.encoded_ids, batch.position_index)


def _features() -> ItemFeatures:
    return ItemFeatures({"ids": torch.arange(12)})


def test_the_boolean_mask_loss_synchronised_four_times_and_this_one_never():
    model = _model(logq=False)
    batch = collate_train_batch(SEQUENCES, _features(), unique_items=False)
    with OpCensus() as before:
        _loss(model, batch, lambda *args: boolean_mask_loss(model, *args)).backward()
    assert before.result.syncs == {"index(bool mask)": 3, "index_put(bool mask)": 1}  # the symptom the issue quotes
    with OpCensus() as after:
        _loss(model, batch).backward()
    assert after.result.sync_count == 0 and after.result.kernels > 0


@pytest.mark.parametrize("shapes", ["dynamic", "static", "bucketed"])
@pytest.mark.parametrize("unique_items", [False, True])
@pytest.mark.parametrize("logq", [False, True])
def test_loss_and_gradients_equal_the_boolean_mask_loss(shapes, unique_items, logq):
    model = _model(logq)
    reference_batch = collate_train_batch(SEQUENCES, _features(), unique_items)
    reference = _loss(model, reference_batch, lambda *args: boolean_mask_loss(model, *args))
    reference.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    batch = collate_train_batch(SEQUENCES, _features(), unique_items, shapes, rows=5)  # two empty rows added
    loss = _loss(model, batch)
    loss.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-5, atol=1e-7, msg=name)


def test_static_and_bucketed_batches_have_fixed_shapes_and_count_only_real_work():
    features = _features()
    short = SEQUENCES[:2]
    static = collate_train_batch(short, features, False, "static", rows=4)
    assert static.sequences.shape == (4, 6) and static.encoded_ids.shape == (24,)
    assert (static.real_sequences, static.real_items) == (2, 9)
    assert int((static.encoded_ids > 0).sum()) == 9  # padding slots encode item 0
    bucketed = collate_train_batch(SEQUENCES, features, True, "bucketed", rows=3)
    assert bucketed.encoded_ids.numel() == min(ITEM_BUCKET, 18) and bucketed.real_items == 11
    dynamic = collate_train_batch(SEQUENCES, features, False)
    assert dynamic.encoded_ids.numel() == dynamic.real_items == 14


def test_a_batch_with_no_prediction_left_gives_finite_gradients():
    """Padding rows (empty sequences of a static batch) predict nothing and keep finite logits: no NaN backward."""
    model = _model(logq=False)
    batch = collate_train_batch(torch.tensor([[0, 0, 0, 0, 5, 6]]), _features(), False, "static", rows=3)
    loss = _loss(model, batch)
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


ALL_METHODS = (
    "[fft, lora, adapter, bitfit, {name: iisan, options: {layer_stride: 1}}, "
    "{name: iisan_cached, options: {layer_stride: 1}}, iisan_versa, iisan_versa_cached, crossan, crossan_cached]"
)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_method_runs_its_timed_step_without_a_synchronisation(write_suite, precision):
    from benchmark.train.hidden_state_build import ensure_cell_caches

    overrides = [f"train.precision={precision}", "train.warmup_steps=2", "eval.enabled=false"]
    cells = expand_cells(load_suite(write_suite(methods=ALL_METHODS, max_steps=3), overrides))
    assert len(cells) == 10
    for cell in cells:
        ensure_cell_caches(cell.config, lambda message: None)
        row = empty_row()
        run_cell(cell.config, row, lambda message: None)
        method = cell.config.method.name
        assert row["status"] in (None, "ok") and row["measured_steps"] == 1, method
        assert row["step_syncs"] == 0, f"{method}: {row['step_sync_ops']}"
        assert row["step_kernels"] > 100, method  # the census ran over forward, backward and optimizer
        assert (row["step_casts"] > 0) == (precision == "bf16"), method


def test_default_step_shapes_change_the_config_id_and_the_old_behaviour_keeps_it(write_suite):
    suite = write_suite(methods="[lora]")
    default = expand_cells(load_suite(suite))[0].config
    old = expand_cells(load_suite(suite, ["train.step_shapes=dynamic", "train.frozen_weights=fp32"]))[0].config
    plain = old.to_dict()
    for key in ("step_shapes", "frozen_weights", "compile_mode"):
        del plain["train"][key]  # a row written before these settings existed
    assert config_id(old) == config_id(plain)
    assert config_id(default) != config_id(old)
    # frozen_weights changes nothing in an fp32 cell: the id does not move with it
    fp32_frozen = expand_cells(load_suite(suite, ["train.step_shapes=dynamic"]))[0].config
    assert config_id(fp32_frozen) == config_id(old)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("precision", "methods"),
    [("bf16", ALL_METHODS), ("fp16", "[lora, bitfit, {name: iisan_cached, options: {layer_stride: 1}}]")],
)
def test_a_cuda_step_raises_no_synchronisation_in_sync_debug_mode(write_suite, precision, methods, monkeypatch):
    """On a GPU, torch itself refuses a synchronising call inside the timed step (MMBENCH_SYNC_DEBUG=error); fp16
    adds the gradient scaler, whose inf check the fused optimizer takes on the device."""
    from benchmark.train.hidden_state_build import ensure_cell_caches

    monkeypatch.setenv("MMBENCH_SYNC_DEBUG", "error")
    overrides = [f"train.precision={precision}", "train.device=cuda", "train.warmup_steps=1", "eval.enabled=false"]
    for cell in expand_cells(load_suite(write_suite(methods=methods, max_steps=3), overrides)):
        ensure_cell_caches(cell.config, lambda message: None)
        row = empty_row()
        run_cell(cell.config, row, lambda message: None)
        assert row["measured_steps"] == 2 and row["step_syncs"] == 0, (cell.config.method.name, row["error"])


def test_the_census_counts_kernels_casts_and_every_kind_of_synchronisation():
    x = torch.randn(4, 3)
    with OpCensus() as census:
        x.view(12)  # a view launches nothing
        (x + 1).sum()
        x[x > 0]  # boolean mask: its size comes from the data
        x.nonzero()
        x.sum().item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.linear(x, torch.randn(2, 3))
    result = census.result
    assert result.syncs == {"index(bool mask)": 1, "nonzero": 1, "_local_scalar_dense": 1}
    assert result.sync_summary() == "_local_scalar_dense x1, index(bool mask) x1, nonzero x1"
    assert result.casts == 2  # autocast's input and weight casts
    assert result.kernels >= 8


def test_frozen_towers_are_stored_in_the_compute_precision_and_trained_ones_are_not():
    from benchmark.formats.registry import load_raw_dataset
    from benchmark.methods.registry import get_method_class
    from benchmark.models.towers import Tower
    from benchmark.train.features import build_towers_and_features
    from benchmark.train.model_setup import store_frozen_towers
    from tests.conftest import tiny_synthetic_dataset

    raw = load_raw_dataset(tiny_synthetic_dataset(3))
    towers_config = {
        "name": "t",
        "text": {"preset": "bert-tiny", "weights": "random", "max_tokens": 8},
        "image": {"preset": "vit-micro", "weights": "random", "image_size": 16},
    }
    for method, stored in (("iisan", torch.bfloat16), ("lora", torch.float32), ("bitfit", torch.float32)):
        towers, _, _ = build_towers_and_features(towers_config, 0, raw)
        options = {"layer_stride": 1} if method == "iisan" else {}
        model = Recommender(get_method_class(method)(options).build_item_encoder(towers, 16), 16, 4, 1, 2, 0.0)
        assert store_frozen_towers(model, "fp32", "compute") == 0  # nothing to gain in fp32
        assert store_frozen_towers(model, "bf16", "fp32") == 0  # asked to keep fp32
        store_frozen_towers(model, "bf16", "compute")
        for tower in (m for m in model.modules() if isinstance(m, Tower)):
            assert {p.dtype for p in tower.parameters()} == {stored}, method
        assert {p.dtype for p in model.user_encoder.parameters()} == {torch.float32}


def test_inputs_prepared_ahead_give_the_towers_the_same_values():
    from benchmark.models.towers import build_tower

    features = {
        "text_ids": torch.randint(1000, 2000, (3, 8)),
        "text_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3, [1, 1] + [0] * 6]),
        "pixels": torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8),
        "video": torch.randint(0, 256, (3, 2, 3, 16, 16), dtype=torch.uint8),
        "audio": torch.randn(3, 32, 16).half(),
    }
    towers = [
        build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        build_tower("image", {"preset": "vit-micro", "weights": "random", "image_size": 16}),
        build_tower("video", {"preset": "videomae-micro", "weights": "random"}),
        build_tower("audio", {"preset": "ast-micro", "weights": "random"}),
    ]
    for tower in towers:
        tower.eval()
        direct = tower(features)
        prepared = tower.prepare_inputs(features, torch.float32)
        torch.testing.assert_close(tower(prepared), direct, msg=tower.label)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tower(tower.prepare_inputs(features, torch.bfloat16))
            reference = tower(features)
        torch.testing.assert_close(low.float(), reference.float(), rtol=0.05, atol=0.05, msg=tower.label)


def test_batches_are_prepared_before_their_step_and_keep_the_host_counts():
    from benchmark.train.batches import DeviceBatches

    features = _features()
    host = [collate_train_batch(SEQUENCES[:2], features, False, "static", rows=3) for _ in range(3)]
    prepared_calls = []

    def prepare(batch_features):
        prepared_calls.append(len(prepared_calls))
        return {**batch_features, "ready": torch.ones(1)}

    batches = DeviceBatches(iter(host), torch.device("cpu"), prepare)
    first = next(batches)
    assert len(prepared_calls) == 2  # the batch handed over and the next one, prepared before the first step runs
    assert first.host is host[0] and first.wait().features["ready"].item() == 1.0
    assert (first.host.real_sequences, first.host.real_items) == (2, 9)
    assert len(list(batches)) == 2 and len(prepared_calls) == 3


@pytest.mark.parametrize("preset", ["bert-tiny", "qwen2-micro", "llama-micro"])
def test_text_towers_build_their_attention_mask_without_asking_the_device(preset, monkeypatch):
    """transformers decides from a 2D mask whether any token is padding (`mask.all()`: a synchronisation); the
    prepared 4D mask gives every real token the same state."""
    from benchmark.modalities import text
    from benchmark.models.towers import build_tower

    tower = build_tower("text", {"preset": preset, "weights": "random", "max_tokens": 8}).eval()
    mask = torch.ones(4, 8, dtype=torch.long)
    mask[:2, 5:] = 0
    if preset != "bert-tiny":
        mask[3, :3] = 0  # a decoder's tokenizer may pad on the left
    features = {"text_ids": torch.randint(1000, 2000, (4, 8)), "text_mask": mask}
    with OpCensus() as census:
        prepared = tower(features, all_layers=True)
    assert census.result.sync_count == 0
    monkeypatch.setattr(text, "_prepared_mask_kind", lambda tower: None)
    with OpCensus() as census:
        plain = tower(features, all_layers=True)
    assert census.result.sync_count > 0  # what the 2D mask costs
    real = mask.bool()[..., None]
    for ours, theirs in zip(prepared, plain, strict=True):
        torch.testing.assert_close(ours * real, theirs * real)
