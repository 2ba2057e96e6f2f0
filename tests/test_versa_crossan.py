"""IISAN-Versa and CROSSAN: the same families of checks as IISAN's, on asymmetric and 4-modality towers."""

from __future__ import annotations

import pytest
import torch

from benchmark.data.collate import collate_train_batch
from benchmark.data.dataset import ItemFeatures
from benchmark.errors import TowerError
from benchmark.formats.registry import load_raw_dataset
from benchmark.methods.registry import get_method_class
from benchmark.methods.side_network import group_indices
from benchmark.models.towers import build_tower, count_parameters
from benchmark.train.features import build_towers_and_features
from benchmark.train.hidden_state_build import ensure_caches
from benchmark.train.recommender import Recommender
from tests.conftest import tiny_synthetic_dataset

CPU = torch.device("cpu")


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def sanb(width: int, bottleneck: int = 64) -> int:
    return linear(width, bottleneck) + linear(bottleneck, width)


def head(width: int, embed: int = 64) -> int:
    return linear(width, width) + linear(width, embed)


def narrowing_head(width: int, embed: int = 64) -> int:
    """Versa's head for the wider tower: Linear(w, 64) then Linear(64, 64)."""
    return linear(width, embed) + linear(embed, embed)


MICRO_TOWERS = {
    "text": {"preset": "qwen2-micro", "weights": "random", "max_tokens": 8},
    "image": {"preset": "vit-micro", "weights": "random", "image_size": 16},
    "video": {"preset": "videomae-micro", "weights": "random"},
    "audio": {"preset": "ast-micro", "weights": "random"},
}


def micro_setup(modalities: tuple[str, ...], seed: int = 0):
    config = {
        "seed": seed,
        "dataset": tiny_synthetic_dataset(
            9, video=True, video_frames=2, video_size=16, audio=True, audio_frames=32, audio_mels=16
        ),
        "towers": {"name": "t", **{m: MICRO_TOWERS[m] for m in modalities}},
    }
    raw = load_raw_dataset(config["dataset"])
    return (raw, *build_towers_and_features(config["towers"], config["seed"], raw))


def test_group_layer_dropping():
    assert group_indices(12, 6, "t") == [0, 2, 4, 6, 8, 10, 12]
    assert group_indices(24, 6, "t") == [0, 4, 8, 12, 16, 20, 24]
    assert group_indices(16, 6, "t") == [0, 3, 5, 8, 11, 13, 16]
    with pytest.raises(TowerError, match="text tower 'x': cannot split 4 layers into 5 groups"):
        group_indices(4, 5, "text tower 'x'")


def test_versa_impossible_grouping_is_a_clear_error():
    towers = {"text": build_tower("text", MICRO_TOWERS["text"]), "image": build_tower("image", MICRO_TOWERS["image"])}
    with pytest.raises(TowerError, match="image tower 'vit-micro': cannot split 2 layers into 3 groups"):
        get_method_class("iisan_versa")({"groups": 3}).build_item_encoder(towers, 32)
    with pytest.raises(
        TowerError, match="text tower 'qwen2-micro': deep_groups \\(1\\) must be at least groups \\(2\\)"
    ):
        get_method_class("iisan_versa")({"groups": 2, "deep_groups": 1}).build_item_encoder(towers, 32)


def test_versa_alignment_shapes_and_surplus_blocks():
    towers = {"text": build_tower("text", MICRO_TOWERS["text"]), "image": build_tower("image", MICRO_TOWERS["image"])}
    encoder = get_method_class("iisan_versa")({"groups": 1, "deep_groups": 2}).build_item_encoder(towers, 32)
    # qwen2-micro: 4 layers, width 64, 2 groups -> states 0, 2, 4; vit-micro: 2 layers, width 128, 1 group -> 0, 2
    assert encoder.layer_indices == {"image": [0, 2], "text": [0, 2, 4]}
    assert encoder.surplus == {"text": 1, "image": 0} and encoder.shared_blocks == 2 and encoder.narrow_width == 64
    assert set(encoder.align) == {"image"}  # the wider tower is projected, the narrower is not
    aligned = encoder.aligned_states({"text": torch.randn(5, 3, 64), "image": torch.randn(5, 2, 128)})
    assert aligned["text"].shape == (5, 2, 64) and aligned["image"].shape == (5, 2, 64)
    assert encoder(
        {
            "text_ids": torch.randint(1000, 4000, (5, 8)),
            "text_mask": torch.ones(5, 8, dtype=torch.long),
            "pixels": torch.randint(0, 255, (5, 3, 16, 16), dtype=torch.uint8),
        }
    ).shape == (5, 32)


def test_versa_trainable_parameters_micro_pair():
    towers = {"text": build_tower("text", MICRO_TOWERS["text"]), "image": build_tower("image", MICRO_TOWERS["image"])}
    trainable, _ = count_parameters(get_method_class("iisan_versa")({}).build_item_encoder(towers, 64))
    # groups = 2 // 2 = 1 for both: 2 kept states each; inter at width 64 with the image aligned 128 -> 64.
    expected = (
        (2 * sanb(64) + 2)
        + (2 * sanb(128) + 2)
        + 2 * linear(128, 64)
        + (2 * sanb(64) + 2)
        + head(64)
        + narrowing_head(128)
        + head(64)
        + linear(192, 64)
    )
    assert trainable == expected


def test_versa_on_symmetric_towers_is_iisan():
    towers = {
        "text": build_tower("text", {"preset": "bert-base", "weights": "random", "max_tokens": 30}),
        "image": build_tower("image", {"preset": "vit-base", "weights": "random", "image_size": 224}),
    }
    versa = count_parameters(get_method_class("iisan_versa")({}).build_item_encoder(dict(towers), 64))[0]
    iisan = count_parameters(get_method_class("iisan")({}).build_item_encoder(dict(towers), 64))[0]
    assert versa == iisan == 4_064_981 - 51_328  # IISAN's count without the user encoder


def test_versa_bert_large_vit_base_counts():
    towers = {
        "text": build_tower("text", {"preset": "bert-large", "weights": "random", "max_tokens": 30}),
        "image": build_tower("image", {"preset": "vit-base", "weights": "random", "image_size": 224}),
    }
    method = get_method_class("iisan_versa")({})
    assert method.layer_plan(towers) == {"image": [0, 2, 4, 6, 8, 10, 12], "text": [0, 4, 8, 12, 16, 20, 24]}
    trainable, _ = count_parameters(method.build_item_encoder(towers, 64))
    expected = (
        (7 * sanb(1024) + 7)
        + (7 * sanb(768) + 7)
        + 7 * linear(1024, 768)
        + (7 * sanb(768) + 7)
        + narrowing_head(1024)
        + head(768)
        + head(768)
        + linear(192, 64)
    )
    assert trainable == expected


@pytest.mark.parametrize(
    "text_preset, kept_text_states, width",
    [
        ("qwen2-0.5b", [0, 4, 8, 12, 16, 20, 24], 896),
        ("llama-1b", [0, 3, 5, 8, 11, 13, 16], 2048),
    ],
)
def test_versa_llm_vit_base_exact_counts(text_preset, kept_text_states, width):
    # Built on the meta device: the architecture and its parameter shapes without allocating 0.5-1.2 B weights.
    with torch.device("meta"):
        towers = {
            "text": build_tower("text", {"preset": text_preset, "weights": "random", "max_tokens": 30}),
            "image": build_tower("image", {"preset": "vit-base", "weights": "random", "image_size": 224}),
        }
        method = get_method_class("iisan_versa")({})
        assert method.layer_plan(towers) == {"image": [0, 2, 4, 6, 8, 10, 12], "text": kept_text_states}
        trainable, _ = count_parameters(method.build_item_encoder(towers, 64))
    expected = (
        (7 * sanb(width) + 7)
        + (7 * sanb(768) + 7)
        + 7 * linear(width, 768)
        + (7 * sanb(768) + 7)
        + narrowing_head(width)
        + head(768)
        + head(768)
        + linear(192, 64)
    )
    assert trainable == expected
    # The reference head saves (w + 64) * w - 64 * 64 parameters over Linear(w, w) + Linear(w, 64): 4.2 M at 2048.
    assert head(width) - narrowing_head(width) == width * width + width - 64 * 64 - 64


def test_crossan_trainable_parameters_four_micro_towers():
    towers = {m: build_tower(m, MICRO_TOWERS[m]) for m in MICRO_TOWERS}
    encoder = get_method_class("crossan")({}).build_item_encoder(towers, 64)
    # All four micro towers have 2 layers -> blocks = 1 -> 2 kept states; widths 64, 128, 64, 64 -> side width 64.
    assert encoder.blocks == 2 and encoder.width == 64 and set(encoder.align) == {"image"}
    experts = 4 * (linear(64, 256) + linear(256, 64))
    expected = 4 * 2 * sanb(64) + 2 * linear(128, 64) + 2 * 4 * 4 + experts + linear(4 * 64, 4)
    assert count_parameters(encoder)[0] == expected


def test_crossan_router_and_mixing_are_distributions():
    raw, towers, _, features = micro_setup(("text", "image", "video", "audio"))
    encoder = get_method_class("crossan")({}).build_item_encoder(towers, 32)
    with torch.no_grad():
        encoder.fusion.router.weight.normal_()  # away from the uniform init
        batch = features.gather(torch.arange(1, 9))
        parts = encoder.side_outputs(encoder.modality_states(batch))
        weights = encoder.fusion.route(parts)
    assert weights.shape == (8, 4) and torch.allclose(weights.sum(-1), torch.ones(8)) and (weights > 0).all()
    assert not torch.allclose(weights, torch.full_like(weights, 0.25))
    assert torch.allclose(encoder.mixing().sum(-1), torch.ones(2, 4))


def test_crossan_needs_two_towers():
    with pytest.raises(TowerError, match="at least two towers"):
        get_method_class("crossan")({}).build_item_encoder({"text": build_tower("text", MICRO_TOWERS["text"])}, 32)


@pytest.mark.parametrize(
    "name, modalities, options",
    [
        ("iisan_versa", ("text", "image"), {"groups": 1, "deep_groups": 2}),
        ("iisan_versa", ("text", "image"), {"fusion": "momef"}),
        ("crossan", ("text", "image", "video", "audio"), {}),
        ("crossan", ("text", "video"), {"fusion": "concat"}),
    ],
)
def test_cached_equals_uncached_and_towers_stay_out_of_autograd(name, modalities, options):
    raw, towers, tower_configs, features = micro_setup(modalities)
    uncached_method = get_method_class(name)(options)
    cached_method = get_method_class(f"{name}_cached")(options)
    caches = ensure_caches(cached_method, towers, raw, features, tower_configs, "fp32", CPU, 16, lambda m: None)
    cached_features = ItemFeatures({f"{m}_states": cache.open_states() for m, (cache, _) in caches.items()})
    torch.manual_seed(0)
    uncached = Recommender(uncached_method.build_item_encoder(towers, 32), 32, 4, 2, 2, 0.0)
    cached = Recommender(cached_method.build_item_encoder(towers, 32), 32, 4, 2, 2, 0.0)
    cached.load_state_dict(uncached.state_dict(), strict=False)
    sequences = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 3, 12, 13]])
    batch_u = collate_train_batch(sequences, features, unique_items=False)
    batch_c = collate_train_batch(sequences, cached_features, unique_items=False)
    saved = []
    original = uncached.item_encoder.modality_states

    def watched(features_):
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
            return original(features_)

    uncached.item_encoder.modality_states = watched
    loss_u = uncached.training_loss(batch_u.sequences, batch_u.features, batch_u.encoded_ids, batch_u.position_index)
    loss_c = cached.training_loss(batch_c.sequences, batch_c.features, batch_c.encoded_ids, batch_c.position_index)
    assert loss_c.item() == pytest.approx(loss_u.item(), rel=2e-3)
    assert saved == []
    loss_u.backward()
    for tower in uncached.item_encoder.towers.values():
        assert all(p.grad is None and not p.requires_grad for p in tower.parameters())
    assert all(p.grad is not None for p in uncached.item_encoder.fusion.parameters())
