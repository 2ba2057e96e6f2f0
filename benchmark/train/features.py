"""Item features for a cell's towers: token ids for text towers, pixels for image towers."""

from __future__ import annotations

from pathlib import Path

from benchmark.data.amazon import RawDataset
from benchmark.data.dataset import ItemFeatures, load_images
from benchmark.models.tokenize import hash_tokenize, pretrained_tokenize
from benchmark.models.towers import Tower

import torch


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
    return ItemFeatures(tensors)
