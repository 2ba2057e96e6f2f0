"""Build frozen-or-not foundation-model towers: the real architecture from a shipped config, or a local checkpoint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.models.presets_registry import TowerPreset, get_preset


class Tower(nn.Module):
    """One modality's encoder. `model` is the transformers module that methods adapt in place."""

    def __init__(self, modality: str, model: nn.Module, preset: TowerPreset, weights: str, identity: str, image_size: int | None):
        super().__init__()
        self.modality = modality
        self.model = model
        self.preset_name = preset.name
        self.weights = weights
        self.identity = identity  # what a hidden-state cache keys on
        config = _base_config(model)
        self.hidden_size: int = config.hidden_size
        self.num_layers: int = config.num_hidden_layers
        self.image_size = image_size
        self.register_buffer("image_mean", torch.tensor(preset.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(preset.image_std).view(1, 3, 1, 1), persistent=False)

    def model_inputs(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.modality == "text":
            return {"input_ids": features["text_ids"], "attention_mask": features["text_mask"]}
        pixels = features["pixels"].float().div_(255.0)
        return {"pixel_values": (pixels - self.image_mean) / self.image_std}

    def forward(self, features: dict[str, torch.Tensor], all_layers: bool = False) -> Any:
        """Last hidden state [n, tokens, hidden]; with all_layers, the tuple of every layer's states."""
        output = self.model(**self.model_inputs(features), output_hidden_states=all_layers, return_dict=True)
        return output.hidden_states if all_layers else output.last_hidden_state

    def summary(self) -> str:
        return f"{self.preset_name}({self.weights if self.weights == 'random' else Path(self.weights).name})"


def _base_config(model: nn.Module) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config


def _model_class(model_type: str) -> type:
    import transformers

    classes = {"bert": transformers.BertModel, "vit": transformers.ViTModel}
    if model_type not in classes:
        raise TowerError(f"no builder for model_type '{model_type}'")
    return classes[model_type]


def _build_random(preset: TowerPreset, image_size: int | None) -> nn.Module:
    import transformers

    config_values = dict(preset.config)
    if preset.modality == "image" and image_size is not None:
        config_values["image_size"] = image_size
    config = transformers.AutoConfig.for_model(preset.model_type, **config_values)
    config._attn_implementation = "sdpa"
    return _model_class(preset.model_type)(config, add_pooling_layer=False)


def _build_local(weights_dir: Path, tower_label: str) -> nn.Module:
    import transformers

    if not (weights_dir / "config.json").is_file():
        raise TowerError(f"{tower_label}: local weights directory {weights_dir} has no config.json")
    try:
        return transformers.AutoModel.from_pretrained(str(weights_dir), local_files_only=True, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler do not take the argument
        return transformers.AutoModel.from_pretrained(str(weights_dir), local_files_only=True)
    except OSError as error:
        raise TowerError(f"{tower_label}: cannot load weights from {weights_dir}: {error}") from error


def _weights_identity(preset: TowerPreset, weights: str, image_size: int | None, seed: int) -> str:
    if weights == "random":
        body = json.dumps({"preset": preset.config, "image_size": image_size}, sort_keys=True)
        return f"random:{preset.name}:{hashlib.sha256(body.encode()).hexdigest()[:12]}:seed={seed}"
    directory = Path(weights)
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for file in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin")):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return f"local:{directory.name}:{digest.hexdigest()[:12]}"


MODALITY_SEED_OFFSET = {"text": 0, "image": 1, "video": 2, "audio": 3}


def build_tower(modality: str, tower_config: dict[str, Any], seed: int = 0, tower_label: str = "") -> Tower:
    """Build one tower from a suite's tower entry ({preset, weights, max_tokens, image_size}).

    Random weights depend only on (preset, modality, seed), not on what was built before, so a
    hidden-state cache keyed on that identity is valid for every cell that shares it.
    """
    preset = get_preset(tower_config["preset"])
    weights = tower_config.get("weights", "random")
    label = tower_label or f"{modality} tower '{preset.name}'"
    image_size = tower_config.get("image_size") or preset.config.get("image_size")
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 16 + MODALITY_SEED_OFFSET.get(modality, 15))
            model = _build_random(preset, image_size if modality == "image" else None)
    else:
        directory = Path(weights)
        if not directory.is_dir():
            raise TowerError(f"{label}: local weights directory not found: {weights}")
        model = _build_local(directory, label)
        if modality == "image":
            image_size = getattr(model.config, "image_size", image_size)
    identity = _weights_identity(preset, weights, image_size if modality == "image" else None, seed)
    return Tower(modality, model, preset, weights, identity, image_size if modality == "image" else None)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared parameters are counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in module.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total
