"""The static memory breakdown against a hand count: FFT and LoRA on bert-tiny + vit-micro, after one AdamW step."""

from __future__ import annotations

import pytest
import torch

from benchmark.methods.registry import get_method_class
from benchmark.models.towers import build_tower
from benchmark.profile.static_memory import static_memory
from benchmark.train.recommender import Recommender


def model_after_one_step(method: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    towers = {
        "text": build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        "image": build_tower("image", {"preset": "vit-micro", "weights": "random", "image_size": 16}),
    }
    model = Recommender(get_method_class(method)({}).build_item_encoder(towers, 64), 64, 5, 2, 2, 0.1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    sum(p.float().square().sum() for p in trainable).backward()  # a gradient for every trainable tensor
    optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("method", ["fft", "lora"])
def test_weights_gradients_and_optimizer_state_equal_the_hand_count(method):
    model, optimizer = model_after_one_step(method)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    n_trainable, n_frozen = sum(p.numel() for p in trainable), sum(p.numel() for p in frozen)
    memory = static_memory(model, optimizer)
    # fp32 weights and gradients: 4 bytes each; AdamW: exp_avg and exp_avg_sq (4 bytes each per parameter)
    # and one fp32 `step` scalar per tensor.
    assert memory.weights_trainable_bytes == memory.gradient_bytes == 4 * n_trainable
    assert memory.weights_frozen_bytes == 4 * n_frozen
    assert memory.optimizer_state_bytes == 8 * n_trainable + 4 * len(trainable)
    if method == "fft":
        assert n_frozen == 0
    else:
        # LoRA r=8 on query and value of 2 layers in each 128-wide tower: 2 towers x 2 layers x 2 x (8x128 + 128x8).
        lora = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
        assert lora == 2 * 2 * 2 * (8 * 128 + 128 * 8) and n_frozen > n_trainable
