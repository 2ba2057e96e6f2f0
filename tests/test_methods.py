"""Parameter counts against hand-derived numbers, and the init guarantees of LoRA and Adapter."""

from __future__ import annotations

import copy

import pytest
import torch

from benchmark.errors import TowerError
from benchmark.methods.registry import get_method_class, method_names
from benchmark.models.towers import build_tower, count_parameters
from benchmark.train.recommender import Recommender

H, FFN, LAYERS = 768, 3072, 12


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def layer_norm(width: int) -> int:
    return 2 * width


# bert-base-uncased without pooler, ViT-B/16 at 224 px without pooler: derived from the architectures.
BERT_LAYER = 4 * linear(H, H) + layer_norm(H) + linear(H, FFN) + linear(FFN, H) + layer_norm(H)
BERT_BASE = 30522 * H + 512 * H + 2 * H + layer_norm(H) + LAYERS * BERT_LAYER
VIT_BASE = H + (14 * 14 + 1) * H + (3 * 16 * 16 * H + H) + LAYERS * BERT_LAYER + layer_norm(H)
HEADS = 2 * linear(H, 64) + linear(128, 64)
SASREC = (
    10 * 64
    + layer_norm(64)
    + 2 * (layer_norm(64) + linear(64, 192) + linear(64, 64) + layer_norm(64) + 2 * linear(64, 64))
    + layer_norm(64)
)
LORA_PER_TOWER = LAYERS * 2 * (8 * H + H * 8)
ADAPTER_PER_TOWER = LAYERS * 2 * (linear(H, 64) + linear(64, H))
BIASES_PER_LAYER = 4 * H + H + FFN + H + H  # q,k,v,o + LayerNorm + intermediate + output + LayerNorm
BERT_BIASES = H + LAYERS * BIASES_PER_LAYER  # + embedding LayerNorm
VIT_BIASES = H + LAYERS * BIASES_PER_LAYER + H  # patch projection + layers + final LayerNorm


def test_hand_derived_base_sizes_match_the_public_models():
    # Published sizes: bert-base-uncased 109,482,240 with its 590,592-parameter pooler; ViT-B/16 86,389,248 with pooler.
    assert BERT_BASE + linear(H, H) == 109_482_240
    assert VIT_BASE + linear(H, H) == 86_389_248


@pytest.fixture(scope="module")
def base_counts():
    counts = {}
    for method in ("fft", "lora", "adapter", "bitfit"):
        torch.manual_seed(0)
        towers = {
            "text": build_tower("text", {"preset": "bert-base", "weights": "random", "max_tokens": 30}),
            "image": build_tower("image", {"preset": "vit-base", "weights": "random", "image_size": 224}),
        }
        encoder = get_method_class(method)({}).build_item_encoder(towers, 64)
        counts[method] = count_parameters(Recommender(encoder, 64, 10, 2, 2, 0.1))
        del towers, encoder
    return counts


@pytest.mark.parametrize(
    "method, expected_trainable",
    [
        ("fft", BERT_BASE + VIT_BASE + HEADS + SASREC),
        ("lora", 2 * LORA_PER_TOWER + HEADS + SASREC),
        ("adapter", 2 * ADAPTER_PER_TOWER + HEADS + SASREC),
        ("bitfit", BERT_BIASES + VIT_BIASES + HEADS + SASREC),
    ],
)
def test_trainable_parameters_bert_base_vit_base(base_counts, method, expected_trainable):
    trainable, total = base_counts[method]
    assert trainable == expected_trainable
    added = {"lora": 2 * LORA_PER_TOWER, "adapter": 2 * ADAPTER_PER_TOWER}.get(method, 0)
    assert total == BERT_BASE + VIT_BASE + HEADS + SASREC + added


def tiny_towers():
    torch.manual_seed(0)
    return {
        "text": build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        "image": build_tower("image", {"preset": "vit-tiny", "weights": "random", "image_size": 32}),
    }


def tiny_features():
    generator = torch.Generator().manual_seed(1)
    return {
        "text_ids": torch.randint(1000, 30000, (3, 8), generator=generator),
        "text_mask": torch.ones(3, 8, dtype=torch.long),
        "pixels": torch.randint(0, 256, (3, 3, 32, 32), generator=generator, dtype=torch.uint8),
    }


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_adapted_towers_equal_the_base_at_init(method):
    towers = tiny_towers()
    base = copy.deepcopy(towers)
    features = tiny_features()
    get_method_class(method)({}).build_item_encoder(towers, 16)
    for modality in towers:
        towers[modality].eval()
        base[modality].eval()
        with torch.no_grad():
            adapted_out = towers[modality](features)
            base_out = base[modality](features)
        assert torch.allclose(adapted_out, base_out, atol=1e-6), modality
        # and the base weights are untouched and frozen
        frozen = [p for n, p in towers[modality].named_parameters() if "lora_" not in n and "adapter" not in n]
        assert frozen and not any(p.requires_grad for p in frozen)


def test_lora_targets_query_value_per_architecture(recwarn):
    towers = tiny_towers()
    get_method_class("lora")({}).build_item_encoder(towers, 16)
    # The symptom: every LoRA cell's log carried transformers' FutureWarning about `is_gradient_checkpointing`.
    assert not [w for w in recwarn if "is_gradient_checkpointing" in str(w.message)]
    text_lora = {
        n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in towers["text"].named_parameters() if "lora_A" in n
    }
    image_lora = {
        n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in towers["image"].named_parameters() if "lora_A" in n
    }
    assert text_lora == {"query", "value"}
    assert image_lora in ({"q_proj", "v_proj"}, {"query", "value"})


def test_bitfit_trains_only_biases():
    towers = tiny_towers()
    get_method_class("bitfit")({}).build_item_encoder(towers, 16)
    for tower in towers.values():
        trainable = [n for n, p in tower.named_parameters() if p.requires_grad]
        assert trainable and all(n.endswith("bias") for n in trainable)


def test_method_that_cannot_apply_names_the_tower():
    towers = tiny_towers()
    towers["text"].model.encoder.layer[0].attention.self.query = torch.nn.Identity()
    for layer in towers["text"].model.encoder.layer:
        layer.attention.self.query = torch.nn.Identity()
    with pytest.raises(TowerError, match="text tower 'bert-tiny'.*query/value"):
        get_method_class("lora")({}).build_item_encoder(towers, 16)


def test_registry_lists_the_core_methods():
    assert {"fft", "lora", "adapter", "bitfit"} <= set(method_names())


def test_bitfit_on_a_bias_free_tower_is_an_error_naming_it(write_suite):
    from benchmark.errors import SuiteError
    from benchmark.plan.loader import load_suite

    # Before: BitFit on llama silently trained 0 tower parameters.
    llama = build_tower("text", {"preset": "llama-micro", "weights": "random", "max_tokens": 8})
    with pytest.raises(TowerError, match="text tower 'llama-micro': it has no bias parameters"):
        get_method_class("bitfit")().build_item_encoder({"text": llama}, 64)
    text = write_suite(methods="[bitfit]").read_text().replace("preset: bert-tiny", "preset: llama-micro")
    path = write_suite(text=text)
    with pytest.raises(SuiteError, match="BitFit cannot adapt the text tower 'llama-micro'.*tower set 'micro'"):
        load_suite(path)
    assert get_method_class("bitfit").tower_problem("text", "qwen2-0.5b") is None  # qwen2 has q/k/v biases


def test_bitfit_layer_norms_compute_the_same_values_and_bias_gradients_as_the_fused_kernel():
    # BitFit's LayerNorms keep the scale frozen and the shift training, the case CUDA's fused backward
    # got wrong (see BiasOnlyLayerNorm); the split form must be the same function with the same gradients.
    from benchmark.methods.bitfit import BiasOnlyLayerNorm

    towers = tiny_towers()
    reference = copy.deepcopy(towers)
    get_method_class("bitfit")({}).build_item_encoder(towers, 16)
    for modality, tower in towers.items():
        norms = [m for m in tower.model.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert norms and all(type(m) is BiasOnlyLayerNorm for m in norms), modality
        fused = [m for m in reference[modality].model.modules() if isinstance(m, torch.nn.LayerNorm)]
        for split_norm, fused_norm in zip(norms, fused, strict=True):
            torch.nn.init.normal_(fused_norm.weight)
            torch.nn.init.normal_(fused_norm.bias)
            split_norm.load_state_dict(fused_norm.state_dict())
            fused_norm.weight.requires_grad_(False)
            inputs = torch.randn(5, 7, split_norm.normalized_shape[0])
            expected = fused_norm(inputs)
            got = split_norm(inputs)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
            expected.square().sum().backward()
            got.square().sum().backward()
            torch.testing.assert_close(split_norm.bias.grad, fused_norm.bias.grad, atol=1e-4, rtol=1e-4)
            assert split_norm.weight.grad is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bitfit_layer_norm_backward_over_65536_rows_on_cuda():
    # The H200 symptom: "NativeLayerNormBackward0 returned an invalid gradient at index 2 - got [0] but
    # expected shape compatible with [768]" once a batch passes 65,536 rows (352 images x 197 patches).
    from benchmark.methods.bitfit import BiasOnlyLayerNorm

    norm = BiasOnlyLayerNorm(768).cuda()
    norm.weight.requires_grad_(False)
    inputs = torch.randn(70_000, 768, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = norm(inputs)
    output.float().sum().backward()
    assert norm.bias.grad is not None and norm.bias.grad.shape == (768,)
    torch.testing.assert_close(norm.bias.grad, torch.full((768,), 70_000.0, device="cuda"))
