"""IISAN: specification checks, cached = uncached, frozen towers without graphs, and the cache's guarantees."""

from __future__ import annotations

import os
import time

import pytest
import torch

from benchmark.data.collate import collate_train_batch
from benchmark.data.dataset import ItemFeatures
from benchmark.data.hidden_state_store import CacheKey, build_cache, caches_directory, find_cache
from benchmark.errors import TowerError
from benchmark.formats.registry import load_raw_dataset
from benchmark.methods.registry import get_method_class
from benchmark.methods.side_network import every_nth_layer
from benchmark.modalities.registry import modality_names
from benchmark.models.towers import build_tower, count_parameters
from benchmark.train.features import build_towers_and_features
from benchmark.train.hidden_state_build import ensure_caches
from benchmark.train.recommender import Recommender
from tests.conftest import tiny_synthetic_dataset

H = 768


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


SANB = linear(H, 64) + linear(64, H)
IISAN_SIDE = 3 * 7 * SANB + 3 * 7  # text, image and inter SANs of 7 blocks, one gate each
IISAN_HEADS = 3 * (linear(H, H) + linear(H, 64)) + linear(192, 64)
SASREC = 10 * 64 + 2 * 64 + 2 * (2 * 64 + linear(64, 192) + linear(64, 64) + 2 * 64 + 2 * linear(64, 64)) + 2 * 64


def test_layer_dropping_keeps_every_second_state():
    assert every_nth_layer(12, 2) == [0, 2, 4, 6, 8, 10, 12]
    assert every_nth_layer(2, 1) == [0, 1, 2]


@pytest.mark.parametrize("name", ["iisan", "iisan_cached"])
def test_trainable_parameters_bert_base_vit_base(name):
    towers = {
        "text": build_tower("text", {"preset": "bert-base", "weights": "random", "max_tokens": 30}),
        "image": build_tower("image", {"preset": "vit-base", "weights": "random", "image_size": 224}),
    }
    tower_total = sum(count_parameters(t)[1] for t in towers.values())
    encoder = get_method_class(name)({}).build_item_encoder(towers, 64)
    trainable, total = count_parameters(Recommender(encoder, 64, 10, 2, 2, 0.1))
    assert trainable == IISAN_SIDE + IISAN_HEADS + SASREC == 4_064_981  # "about 4.1 M"
    if name == "iisan":
        assert total == trainable + tower_total  # the frozen towers are inside the uncached model
    else:
        assert total == trainable  # the cached model holds no tower; the loop adds their count to total_params


REFERENCE_SASREC = 10 * 64 + 2 * 64 + 2 * (4 * 64 * 64 + 2 * 64 + linear(64, 256) + linear(256, 64) + 2 * 64)


def test_the_paper_suite_trains_the_reference_codes_parameters():
    """iisan-paper.yaml takes the IISAN code's choices: its post-LN user encoder makes the code's 4,113,877."""
    from benchmark.plan.loader import load_suite
    from benchmark.suite.matrix import expand_cells
    from tests.conftest import ROOT

    cell = next(
        c for c in expand_cells(load_suite(ROOT / "suites/iisan-paper.yaml")) if c.config.method.name == "iisan"
    )
    train, options = cell.config.train, cell.config.method.options
    assert (options.activation, options.init, train.user_encoder) == ("relu", "reference", "post-ln")
    assert (train.precision, train.weight_decay, train.logq_correction) == ("fp16", 0.0, True)
    towers = {m: build_tower(m, tower, 0) for m, tower in cell.config.towers.present(modality_names()).items()}
    encoder = get_method_class("iisan")(options).build_item_encoder(towers, 64)
    model = Recommender(encoder, 64, 10, 2, 2, 0.1, user_encoder=train.user_encoder)
    assert count_parameters(model)[0] == IISAN_SIDE + IISAN_HEADS + REFERENCE_SASREC == 4_113_877


def tiny_config(seed: int = 0, layers: list[int] | None = None) -> dict:
    return {
        "seed": seed,
        "dataset": tiny_synthetic_dataset(5),
        "towers": {
            "name": "t",
            "text": {"preset": "bert-tiny", "weights": "random", "max_tokens": 8},
            "image": {"preset": "vit-micro", "weights": "random", "image_size": 16},
        },
        "method_options": {"bottleneck": 16, "activation": "gelu", "layer_stride": 1, "layers": layers or []},
    }


def prepared(config):
    raw = load_raw_dataset(config["dataset"])
    towers, tower_configs, features = build_towers_and_features(config["towers"], config["seed"], raw)
    return raw, towers, tower_configs, features


def test_cached_equals_uncached_for_the_same_batch():
    config = tiny_config()
    raw, towers, tower_configs, features = prepared(config)
    uncached_method = get_method_class("iisan")(config["method_options"])
    cached_method = get_method_class("iisan_cached")(config["method_options"])
    caches = ensure_caches(
        cached_method, towers, raw, features, tower_configs, "fp32", torch.device("cpu"), 7, lambda m: None
    )
    cached_features = ItemFeatures({f"{m}_states": cache.open_states() for m, (cache, _) in caches.items()})
    torch.manual_seed(3)
    uncached = Recommender(uncached_method.build_item_encoder(towers, 32), 32, 4, 2, 2, 0.0)
    cached = Recommender(cached_method.build_item_encoder(towers, 32), 32, 4, 2, 2, 0.0)
    cached.load_state_dict(uncached.state_dict(), strict=False)
    sequences = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 3, 12, 13]])
    batch_uncached = collate_train_batch(sequences, features, unique_items=False)
    batch_cached = collate_train_batch(sequences, cached_features, unique_items=False)
    for model in (uncached, cached):
        model.train()
    emb_uncached = uncached.item_encoder(batch_uncached.features)
    emb_cached = cached.item_encoder(batch_cached.features)
    relative = (emb_cached - emb_uncached).norm() / emb_uncached.norm()
    assert relative < 2e-3  # fp16 cache rounding
    loss_uncached = uncached.training_loss(
        batch_uncached.sequences, batch_uncached.features, batch_uncached.encoded_ids, batch_uncached.position_index
    )
    loss_cached = cached.training_loss(
        batch_cached.sequences, batch_cached.features, batch_cached.encoded_ids, batch_cached.position_index
    )
    assert loss_cached.item() == pytest.approx(loss_uncached.item(), rel=2e-3)


def test_towers_get_no_gradient_and_save_nothing_for_backward():
    config = tiny_config()
    raw, towers, _, features = prepared(config)
    encoder = get_method_class("iisan")(config["method_options"]).build_item_encoder(towers, 32)
    model = Recommender(encoder, 32, 4, 2, 2, 0.0).train()
    batch = collate_train_batch(torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]), features, unique_items=False)
    saved_in_towers, saved_in_side = [], []
    target = saved_in_side

    def pack(tensor):
        target.append(tensor.shape)
        return tensor

    original = encoder.modality_states

    def towers_only(features_):
        nonlocal target
        target = saved_in_towers
        try:
            return original(features_)
        finally:
            target = saved_in_side

    encoder.modality_states = towers_only
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model.training_loss(batch.sequences, batch.features, batch.encoded_ids, batch.position_index)
    loss.backward()
    assert saved_in_towers == []  # the towers' forward built no graph
    assert saved_in_side  # while the side network did (the hook works)
    for tower in encoder.towers.values():
        assert all(p.grad is None and not p.requires_grad for p in tower.parameters())
    assert all(p.grad is not None for p in encoder.side.parameters())


def _per_path_iisan(width: int, blocks: int, bottleneck: int, embed_dim: int) -> torch.nn.ModuleDict:
    """IISAN as separate modules per path (text, image, inter), built in the order mmbench built them before the
    paths were batched: the batched encoder must start from the same values and compute the same function."""
    from benchmark.methods.side_network import InterModalSAN, IntraModalSAN, projection_head

    return torch.nn.ModuleDict(
        {
            "text_san": IntraModalSAN(blocks, width, bottleneck, "gelu"),
            "image_san": IntraModalSAN(blocks, width, bottleneck, "gelu"),
            "inter_san": InterModalSAN(blocks, width, bottleneck, "gelu"),
            "text_head": projection_head(width, embed_dim),
            "image_head": projection_head(width, embed_dim),
            "inter_head": projection_head(width, embed_dim),
            "fusion": torch.nn.Linear(3 * embed_dim, embed_dim),
        }
    )


def _per_path_forward(paths: torch.nn.ModuleDict, states: dict[str, torch.Tensor]) -> torch.Tensor:
    text, image = states["text"], states["image"]
    parts = [
        paths["text_head"](paths["text_san"](text)),
        paths["image_head"](paths["image_san"](image)),
        paths["inter_head"](paths["inter_san"](image, text)),
    ]
    return paths["fusion"](torch.cat(parts, dim=-1))


@pytest.mark.parametrize("precision", [None, torch.bfloat16])
def test_batched_paths_equal_the_per_path_side_network(precision):
    towers = {
        "text": build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        "image": build_tower("image", {"preset": "vit-micro", "weights": "random", "image_size": 16}),
    }
    torch.manual_seed(5)
    batched = get_method_class("iisan_cached")({"layer_stride": 1, "bottleneck": 16}).build_item_encoder(towers, 32)
    torch.manual_seed(5)
    per_path = _per_path_iisan(towers["text"].hidden_size, 3, 16, 32)
    assert count_parameters(batched) == count_parameters(per_path)
    with torch.no_grad():  # trained gates, so that every gate term matters
        batched.gate_logits.copy_(torch.randn(3, 3))
        for index, name in enumerate(("text_san", "image_san", "inter_san")):
            per_path[name].gates.logits.copy_(batched.gate_logits[index])
    states = {"text": torch.randn(10, 3, 128), "image": torch.randn(10, 3, 128)}
    with torch.autocast("cpu", dtype=precision or torch.bfloat16, enabled=precision is not None):
        ours, theirs = batched.side_forward(states), _per_path_forward(per_path, states)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if precision is None else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(ours.float(), theirs.float(), **tolerance)
    ours.float().square().sum().backward()
    theirs.float().square().sum().backward()
    torch.testing.assert_close(batched.gate_logits.grad[2], per_path["inter_san"].gates.logits.grad, **tolerance)
    down_grad = per_path["image_san"].blocks[1].down.weight.grad.t()
    torch.testing.assert_close(batched.side.down_weight.grad[1, 1], down_grad, **tolerance)


def test_reference_initialisation_draws_the_iisan_codes_adapter_init():
    towers = {
        "text": build_tower("text", {"preset": "bert-base", "weights": "random", "max_tokens": 30}),
        "image": build_tower("image", {"preset": "vit-base", "weights": "random", "image_size": 224}),
    }
    encoder = get_method_class("iisan")({"init": "reference"}).build_item_encoder(towers, 64)
    assert encoder.side.down_bias.abs().max().item() == 0.0 and encoder.side.up_bias.abs().max().item() == 0.0
    assert encoder.side.up_weight.std().item() == pytest.approx(0.01, rel=0.02)
    default = get_method_class("iisan")({}).build_item_encoder(towers, 64)
    assert default.side.up_weight.abs().max().item() == pytest.approx(1 / 8, rel=0.01)  # U(-1/sqrt(64), 1/sqrt(64))


def test_asymmetric_towers_are_refused_with_a_pointer_to_versa():
    towers = {
        "text": build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        "image": build_tower("image", {"preset": "vit-tiny", "weights": "random", "image_size": 32}),
    }
    with pytest.raises(TowerError, match="symmetric towers.*iisan_versa"):
        get_method_class("iisan")({}).build_item_encoder(towers, 32)
    with pytest.raises(TowerError, match=r"layer indices \[5\] do not exist"):
        get_method_class("iisan")({"layers": [0, 5]}).layer_plan({"text": towers["text"]})


def test_cache_is_reused_and_invalidated_by_layer_indices():
    config = tiny_config(seed=1)
    raw, towers, tower_configs, features = prepared(config)
    method = get_method_class("iisan_cached")(config["method_options"])
    first = ensure_caches(method, towers, raw, features, tower_configs, "fp32", torch.device("cpu"), 8, lambda m: None)
    again = ensure_caches(method, towers, raw, features, tower_configs, "fp32", torch.device("cpu"), 8, lambda m: None)
    assert all(built for _, built in first.values()) and not any(built for _, built in again.values())
    assert {m: c.directory for m, (c, _) in first.items()} == {m: c.directory for m, (c, _) in again.items()}
    # A fresh process would rebuild the same towers from the seed: the cache still matches.
    raw2, towers2, tower_configs2, features2 = prepared(tiny_config(seed=1))
    assert not any(
        built
        for _, built in ensure_caches(
            method, towers2, raw2, features2, tower_configs2, "fp32", torch.device("cpu"), 8, lambda m: None
        ).values()
    )
    fewer_layers = get_method_class("iisan_cached")({**config["method_options"], "layers": [0, 2]})
    changed = ensure_caches(
        fewer_layers, towers, raw, features, tower_configs, "fp32", torch.device("cpu"), 8, lambda m: None
    )
    assert all(built for _, built in changed.values())
    assert changed["text"][0].open_states().shape == (31, 2, 128) and first["text"][0].open_states().shape == (
        31,
        3,
        128,
    )
    other_seed = prepared(tiny_config(seed=2))
    rebuilt = ensure_caches(
        method,
        other_seed[1],
        other_seed[0],
        other_seed[3],
        other_seed[2],
        "fp32",
        torch.device("cpu"),
        8,
        lambda m: None,
    )
    assert all(built for _, built in rebuilt.values())  # different random weights, different cache


def test_a_killed_build_is_never_used_and_is_cleaned_up():
    key = CacheKey("random:test:abc:seed=0", "dataset-1", (0, 1), "tokens=4", "fp32")

    def dying_batches():
        yield torch.tensor([1, 2]), torch.ones(2, 2, 4)
        raise KeyboardInterrupt("killed midway")

    with pytest.raises(KeyboardInterrupt):
        build_cache(key, 4, 2, 4, dying_batches())
    assert find_cache(key) is None
    assert not list(caches_directory().glob(".staging-*"))
    # A SIGKILLed build leaves its staging directory behind: ignored by readers, removed once stale.
    stale = caches_directory() / ".staging-killed"
    stale.mkdir()
    (stale / "states.npy").write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert find_cache(key) is None
    cache = build_cache(key, 4, 2, 4, iter([(torch.tensor([1, 2, 3, 4]), torch.full((4, 2, 4), 0.5))]))
    assert not stale.exists()
    assert find_cache(key).directory == cache.directory
    assert cache.open_states()[1:].eq(0.5).all() and cache.open_states()[0].eq(0).all()


def test_an_incomplete_build_is_refused():
    key = CacheKey("random:test:abc:seed=0", "dataset-2", (0,), "tokens=4", "fp32")
    with pytest.raises(RuntimeError, match="covered 2 of 4 items"):
        build_cache(key, 4, 1, 4, iter([(torch.tensor([1, 2]), torch.ones(2, 1, 4))]))
    assert find_cache(key) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cached_training_keeps_the_towers_off_the_gpu(write_suite):
    from benchmark.plan.loader import load_suite
    from benchmark.results.schema import empty_row
    from benchmark.suite.matrix import expand_cells
    from benchmark.train.loop import run_cell

    methods = "[{name: iisan, options: {layer_stride: 1}}, {name: iisan_cached, options: {layer_stride: 1}}]"
    peaks = {}
    from benchmark.train.hidden_state_build import ensure_cell_caches

    for cell in expand_cells(load_suite(write_suite(methods=methods, max_steps=4), ["train.device=cuda"])):
        ensure_cell_caches(cell.config, lambda message: None)  # the launcher's job, in its own process in a run
        row = empty_row()
        run_cell(cell.config, row, lambda message: None)
        peaks[cell.config.method.name] = row["torch_peak_alloc_gib"]
    tower_bytes = (4_400_000 + 420_000) * 4 / 1024**3  # bert-tiny + vit-micro weights in fp32, roughly
    assert peaks["iisan_cached"] < peaks["iisan"] - 0.5 * tower_bytes


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cached_training_peak_is_the_same_with_a_cold_or_warm_cache(write_suite, tmp_path, monkeypatch):
    """The cache is built in its own process, so the training cell's CUDA context never holds the towers."""
    from benchmark.launch.local import run_cell_subprocess
    from benchmark.plan.loader import load_suite
    from benchmark.results.read import read_results
    from benchmark.suite.matrix import expand_cells

    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cold-cache"))
    methods = "[{name: iisan_cached, options: {layer_stride: 1}}]"
    cell = expand_cells(load_suite(write_suite(methods=methods, max_steps=6), ["train.device=cuda"]))[0]
    for run in ("cold", "warm"):
        assert run_cell_subprocess(cell, tmp_path / run, run).status == "ok"
    cold = read_results(tmp_path / "cold")[0].row(0, named=True)
    warm = read_results(tmp_path / "warm")[0].row(0, named=True)
    assert (cold["cache_origin"], warm["cache_origin"]) == ("built", "reused")
    assert warm["torch_peak_alloc_gib"] == pytest.approx(cold["torch_peak_alloc_gib"], rel=0.01)
    if cold["nvml_peak_process_gib"] is not None:
        assert abs(warm["nvml_peak_process_gib"] - cold["nvml_peak_process_gib"]) < 0.05  # GiB: allocator granularity
