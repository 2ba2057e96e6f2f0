"""Item features for a cell's towers: token ids (text), pixels (image), clips (video), spectrograms (audio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.data.dataset import ItemFeatures, load_array_media, load_images
from benchmark.data.raw import RawDataset
from benchmark.models.tokenize import hash_tokenize, pretrained_tokenize
from benchmark.models.towers import Tower, build_tower
from benchmark.suite.config import TowerConfig, TowerSetConfig, build


def build_towers_and_features(
    tower_set: TowerSetConfig | dict[str, Any], seed: int, raw: RawDataset
) -> tuple[dict[str, Tower], dict[str, TowerConfig], ItemFeatures]:
    """A tower set's towers (random weights seeded by `seed`), their suite entries, and the item features they read."""
    if isinstance(tower_set, dict):
        tower_set = build(TowerSetConfig, tower_set)
    tower_configs = tower_set.present()
    towers = {modality: build_tower(modality, tower_config, seed) for modality, tower_config in tower_configs.items()}
    return towers, tower_configs, build_item_features(raw, towers, tower_configs)


def build_item_features(
    raw: RawDataset, towers: dict[str, Tower], tower_configs: dict[str, TowerConfig]
) -> ItemFeatures:
    tensors: dict[str, torch.Tensor] = {}
    if "text" in towers:
        titles = [""] + raw.titles  # row 0: padding item
        max_tokens = tower_configs["text"].max_tokens
        weights = tower_configs["text"].weights
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
