"""The plain loop's towers: shipped BERT/ViT configs built with transformers, with FFT, LoRA, adapters or BitFit."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

PRESETS = Path(__file__).resolve().parents[2] / "benchmark" / "models" / "presets"
TOWER_CLASSES = {"bert": "BertModel", "vit": "ViTModel"}


class Unsupported(Exception):
    """This cell is outside what the plain loop covers; the message says why."""


class TowerConfig(Protocol):
    """What the plain loop reads of a tower's transformers config."""

    hidden_size: int
    num_hidden_layers: int
    image_size: int
    vocab_size: int


def config_of(tower: nn.Module) -> TowerConfig:
    """A transformers tower's config (nn.Module's attribute lookup types it as a tensor or a module)."""
    return cast(TowerConfig, tower.config)


def load_preset(name: str) -> dict[str, Any]:
    path = PRESETS / f"{name}.json"
    if not path.is_file():
        raise Unsupported(f"no shipped tower config '{name}'")
    preset: dict[str, Any] = json.loads(path.read_text())
    if preset["model_type"] not in TOWER_CLASSES:
        raise Unsupported(f"tower '{name}' ({preset['model_type']}): the plain loop builds BERT and ViT towers")
    return preset


def build_tower(preset: dict[str, Any], image_size: int | None, seed: int) -> nn.Module:
    import transformers

    values = dict(preset["config"])
    if preset["modality"] == "image" and image_size:
        values["image_size"] = image_size
    config = transformers.AutoConfig.for_model(preset["model_type"], **values)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return cast(nn.Module, getattr(transformers, TOWER_CLASSES[preset["model_type"]])(config, add_pooling_layer=False))


class Bottleneck(nn.Module):
    """x + up(act(down(x)))."""

    def __init__(self, width: int, bottleneck: int, activation: str, zero_up: bool = False):
        super().__init__()
        self.down, self.up = nn.Linear(width, bottleneck), nn.Linear(bottleneck, width)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        if zero_up:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch types a module call as Any: its result is bound to an annotated name, not cast (no extra call).
        update: torch.Tensor = self.up(self.act(self.down(x)))
        return x + update


class WithAdapter(nn.Module):
    def __init__(self, projection: nn.Linear, adapter: Bottleneck):
        super().__init__()
        self.projection, self.adapter = projection, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapted: torch.Tensor = self.adapter(self.projection(x))
        return adapted


class ShiftOnlyLayerNorm(nn.Module):
    """LayerNorm with a frozen scale and a training shift, the affine part applied outside the fused kernel (CUDA's
    fused backward returns an empty bias gradient for more than 65,536 rows when the weight needs none)."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.shape, self.eps, self.weight, self.bias = norm.normalized_shape, norm.eps, norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, None, None, self.eps) * self.weight + self.bias


def adapt(tower: nn.Module, method: str, options: dict[str, Any]) -> nn.Module:
    """FFT, LoRA, Houlsby adapters or BitFit on one tower; returns the (possibly wrapped) tower."""
    if method == "fft":
        return tower
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        names = {name.rsplit(".", 1)[-1] for name, module in tower.named_modules() if isinstance(module, nn.Linear)}
        targets = ["query", "value"] if "query" in names else ["q_proj", "v_proj"]
        lora = LoraConfig(
            r=options.get("r", 8),
            lora_alpha=options.get("alpha", 16),
            lora_dropout=options.get("dropout", 0.0),
            target_modules=targets,
            bias="none",
        )
        with warnings.catch_warnings():  # peft asks for transformers' deprecated `is_gradient_checkpointing`
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(tower, lora)
    if method == "adapter":
        # After each layer's attention output projection and feed-forward output projection (names by transformers
        # version: BERT/ViT `attention.output.dense` + `output.dense`, newer ViT `attention.o_proj` + `mlp.fc2`).
        pattern = re.compile(r"(attention\.output\.dense|attention\.o_proj|\.\d+\.output\.dense|mlp\.fc2)$")
        for name, module in list(tower.named_modules()):
            if isinstance(module, nn.Linear) and pattern.search(name):
                parent_name, _, child = name.rpartition(".")
                adapter = Bottleneck(
                    module.out_features, options.get("bottleneck", 64), options.get("activation", "gelu"), True
                )
                setattr(tower.get_submodule(parent_name), child, WithAdapter(module, adapter))
        return tower
    if method == "bitfit":
        for name, parameter in tower.named_parameters():
            parameter.requires_grad_(name.endswith("bias"))
        for name, module in list(tower.named_modules()):
            if type(module) is nn.LayerNorm:
                parent_name, _, child = name.rpartition(".")
                parent = tower.get_submodule(parent_name) if parent_name else tower
                setattr(parent, child, ShiftOnlyLayerNorm(module))
        return tower
    raise Unsupported(f"method '{method}'")
