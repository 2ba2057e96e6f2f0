"""Build frozen-or-not foundation-model towers: the real architecture from a shipped config, or a local checkpoint."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.modalities.registry import get_modality
from benchmark.models.hub import checkpoint_directory
from benchmark.models.presets_registry import TowerPreset, get_preset
from benchmark.suite.config import TowerConfig


class PeftWrapped(Protocol):
    """A peft wrapper around a transformers model (what `hasattr(model, "get_base_model")` tells apart)."""

    def get_base_model(self) -> nn.Module: ...


class Tower(nn.Module):
    """One modality's encoder. `model` is the transformers module that methods adapt in place; what the model
    reads, and how its input is prepared, is the modality's (benchmark/modalities)."""

    # Buffers (registered in __init__, so nn.Module's __getattr__ finds them; declared here for their type).
    image_mean: torch.Tensor
    image_std: torch.Tensor

    def __init__(
        self,
        modality: str,
        model: nn.Module,
        preset: TowerPreset,
        weights: str,
        identity: str,
        image_size: int | None,
        weights_dir: Path | None = None,
    ):
        super().__init__()
        self.modality = modality
        self.model = model
        self.preset_name = preset.name
        self.weights = weights
        self.weights_dir = weights_dir  # the checkpoint it loaded (its tokenizer too); None for random weights
        self.identity = identity  # what a hidden-state cache keys on
        self.pooling = preset.pooling
        self.hidden_size: int = self.model_config.hidden_size
        self.num_layers: int = self.model_config.num_hidden_layers
        self.image_size = image_size
        self.register_buffer("image_mean", torch.tensor(preset.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(preset.image_std).view(1, 3, 1, 1), persistent=False)

    @property
    def model_config(self) -> Any:
        """The transformers config of the model (of the base model under a peft wrapper)."""
        return _base_config(self.model)

    def _prepared_key(self, argument: str) -> str:
        return f"{self.modality}:prepared:{argument}"

    def prepare_inputs(self, features: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """A batch's features with this tower's model inputs already made (normalised, resampled, floating ones in
        `dtype`), so that the training step starts from them: the trainer prepares the next batch while the current
        step runs (on a GPU, on a side stream), instead of inside the timed step. Under autocast the tower's first
        operation would round its input to `dtype` anyway, so the values it sees are the same."""
        prepared = dict(features)
        for argument, tensor in get_modality(self.modality).model_inputs(self, features).items():
            prepared[self._prepared_key(argument)] = tensor.to(dtype) if tensor.is_floating_point() else tensor
        return prepared

    def model_inputs(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        prefix = self._prepared_key("")
        prepared = {key[len(prefix) :]: tensor for key, tensor in features.items() if key.startswith(prefix)}
        return prepared or get_modality(self.modality).model_inputs(self, features)

    def forward(self, features: dict[str, torch.Tensor], all_layers: bool = False) -> Any:
        """Last hidden state [n, tokens, hidden]; with all_layers, the tuple of every layer's states."""
        output = self.model(**self.model_inputs(features), output_hidden_states=all_layers, return_dict=True)
        return output.hidden_states if all_layers else output.last_hidden_state

    def pool(self, hidden: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """[n, tokens, hidden] -> [n, hidden]: the first token's state, or the mean over valid tokens."""
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = get_modality(self.modality).pooling_mask(features)
        if mask is None:
            return hidden.mean(1)
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    @property
    def label(self) -> str:
        """How messages name this tower: "text tower 'bert-base'"."""
        return f"{self.modality} tower '{self.preset_name}'"

    def summary(self) -> str:
        return f"{self.preset_name}({self.weights if self.weights == 'random' else Path(self.weights).name})"


def _base_config(model: nn.Module) -> Any:
    base = cast(PeftWrapped, model).get_base_model() if hasattr(model, "get_base_model") else model
    return base.config


# model_type -> (transformers class name, extra constructor arguments). No pooler: it would be
# dead weight (we pool ourselves) that FFT would count as trainable.
MODEL_CLASSES = {
    "bert": ("BertModel", {"add_pooling_layer": False}),
    "vit": ("ViTModel", {"add_pooling_layer": False}),
    "qwen2": ("Qwen2Model", {}),
    "llama": ("LlamaModel", {}),
    "videomae": ("VideoMAEModel", {}),
    "audio-spectrogram-transformer": ("ASTModel", {}),
}


def _build_random(preset: TowerPreset, image_size: int | None) -> nn.Module:
    import transformers

    if preset.model_type not in MODEL_CLASSES:
        raise TowerError(f"tower preset '{preset.name}': no builder for model_type '{preset.model_type}'")
    config_values = dict(preset.config)
    if get_modality(preset.modality).takes_image_size and image_size is not None:
        config_values["image_size"] = image_size
    config = transformers.AutoConfig.for_model(preset.model_type, **config_values)
    config._attn_implementation = "sdpa"
    class_name, arguments = MODEL_CLASSES[preset.model_type]
    return cast(nn.Module, getattr(transformers, class_name)(config, **arguments))


def _build_local(weights_dir: Path, tower_label: str, load_weights: bool = True) -> nn.Module:
    """The checkpoint's model; without `load_weights`, its architecture alone (built from its config.json, for a
    caller that builds on the meta device: `mmbench estimate`)."""
    import transformers

    if not (weights_dir / "config.json").is_file():
        raise TowerError(f"{tower_label}: local weights directory {weights_dir} has no config.json")
    try:
        if not load_weights:
            config = transformers.AutoConfig.from_pretrained(str(weights_dir), local_files_only=True)
            return cast(nn.Module, _without_pooler(transformers.AutoModel.from_config, config))
        return cast(
            nn.Module,
            _without_pooler(transformers.AutoModel.from_pretrained, str(weights_dir), local_files_only=True),
        )
    except OSError as error:
        raise TowerError(f"{tower_label}: cannot load weights from {weights_dir}: {error}") from error


def _without_pooler(make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return make(*args, add_pooling_layer=False, **kwargs)
    except TypeError:  # architectures without a pooler do not take the argument
        return make(*args, **kwargs)


def _local_identity(directory: Path) -> str:
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for file in sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin")):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return f"local:{directory.name}:{digest.hexdigest()[:12]}"


def build_tower(
    modality: str,
    tower_config: TowerConfig | dict[str, Any],
    seed: int = 0,
    tower_label: str = "",
    load_weights: bool = True,
) -> Tower:
    """Build one tower from a suite's tower entry ({preset, weights, max_tokens, image_size}); without
    `load_weights` a checkpoint's architecture only (its weights are never read).

    Random weights depend only on (preset, modality, seed), not on what was built before, so a
    hidden-state cache keyed on that identity is valid for every cell that shares it.
    """
    if isinstance(tower_config, dict):
        tower_config = TowerConfig(**tower_config)
    preset = get_preset(tower_config.preset)
    weights = tower_config.weights
    label = tower_label or f"{modality} tower '{preset.name}'"
    image_size = tower_config.image_size or preset.config.get("image_size")
    visual = get_modality(modality).takes_image_size
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 16 + get_modality(modality).seed_offset)
            model = _build_random(preset, image_size if visual else None)
        body = json.dumps({"preset": preset.config, "image_size": image_size if visual else None}, sort_keys=True)
        identity = f"random:{preset.name}:{hashlib.sha256(body.encode()).hexdigest()[:12]}:seed={seed}"
        return Tower(modality, model, preset, weights, identity, image_size if visual else None)
    directory = checkpoint_directory(weights, tower_config.revision)  # a Hub id absent offline raises, named
    if directory is None:
        raise TowerError(f"{label}: local weights directory not found: {weights}")
    model = _build_local(directory, label, load_weights)
    if visual:
        image_size = getattr(model.config, "image_size", image_size)
    # A Hub model is the commit it resolved to (its snapshot directory); a local directory, its files' sizes and times.
    local = directory == Path(weights).expanduser()
    identity = _local_identity(directory) if local else f"hub:{weights}@{directory.name}"
    return Tower(modality, model, preset, weights, identity, image_size if visual else None, directory)


@functools.cache
def preset_has_bias(preset_name: str) -> bool:
    """Whether a preset's architecture has any bias parameter (built on the meta device: no memory, no weights)."""
    preset = get_preset(preset_name)
    with torch.device("meta"):
        model = _build_random(preset, preset.config.get("image_size"))
    return any(name.endswith("bias") for name, _ in model.named_parameters())


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared parameters are counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in module.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        values = parameter_values(parameter)
        total += values
        if parameter.requires_grad:
            trainable += values
    return trainable, total


def parameter_values(parameter: torch.Tensor) -> int:
    """The values a parameter holds: its elements, except for a quantized 4-bit weight (bitsandbytes), which packs
    two values in each byte and keeps its original shape in its quantization state."""
    shape = getattr(getattr(parameter, "quant_state", None), "shape", None)
    return math.prod(shape) if shape is not None else parameter.numel()
