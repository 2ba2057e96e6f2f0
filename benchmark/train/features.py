"""Item features for a cell's towers: token ids (text), pixels (image), clips (video), spectrograms (audio)."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.data.amazon import RawDataset
from benchmark.data.dataset import ItemFeatures, load_array_media, load_images
from benchmark.models.tokenize import hash_tokenize, pretrained_tokenize
from benchmark.models.towers import Tower, build_tower

MODALITIES = ("text", "image", "video", "audio")


def build_towers_and_features(config: dict, raw: RawDataset) -> tuple[dict[str, Tower], dict[str, dict], ItemFeatures]:
    """The cell's towers (seeded by the caller), their suite entries, and the item features they read."""
    tower_configs = {modality: config["towers"][modality] for modality in MODALITIES if config["towers"].get(modality)}
    towers = {modality: build_tower(modality, tower_config, config["seed"]) for modality, tower_config in tower_configs.items()}
    return towers, tower_configs, build_item_features(raw, towers, tower_configs)


def build_item_features(raw: RawDataset, towers: dict[str, Tower], tower_configs: dict[str, dict]) -> ItemFeatures:
    tensors: dict[str, torch.Tensor] = {}
    if "text" in towers:
        titles = [""] + raw.titles  # row 0: padding item
        max_tokens = tower_configs["text"]["max_tokens"]
        weights = tower_configs["text"]["weights"]
        if weights == "random":
            ids, mask = hash_tokenize(titles, max_tokens, towers["text"].model.config.vocab_size)
        else:
            ids, mask = pretrained_tokenize(titles, max_tokens, Path(weights))
        tensors["text_ids"], tensors["text_mask"] = ids, mask
    if "image" in towers:
        tensors["pixels"] = load_images(raw, towers["image"].image_size)
    if "video" in towers:
        tensors["video"] = load_array_media(raw, "video", torch.uint8)
    if "audio" in towers:
        tensors["audio"] = load_array_media(raw, "audio", torch.float16)
    return ItemFeatures(tensors)
