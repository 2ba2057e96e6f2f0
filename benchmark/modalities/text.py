"""Text: item titles as token ids and attention masks (hashed ids for random towers, the tokenizer for real ones)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmark.modalities.registry import Modality, register_modality

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import Tower
    from benchmark.suite.config import TowerConfig


@register_modality
class Text(Modality):
    name = "text"
    description = "item titles, max_tokens tokens each"
    feature_keys = ("text_ids", "text_mask")
    seed_offset = 0

    def features(self, raw: RawDataset, tower: Tower, tower_config: TowerConfig) -> dict[str, torch.Tensor]:
        from benchmark.models.tokenize import hash_tokenize, pretrained_tokenize

        titles = [""] + raw.titles  # row 0: padding item
        if tower_config.weights == "random":
            ids, mask = hash_tokenize(titles, tower_config.max_tokens, tower.model_config.vocab_size)
        else:
            ids, mask = pretrained_tokenize(titles, tower_config.max_tokens, Path(tower_config.weights))
        return {"text_ids": ids, "text_mask": mask}

    def model_inputs(self, tower: Tower, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"input_ids": features["text_ids"], "attention_mask": features["text_mask"]}

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        return f"tokens={tower_config.max_tokens}"

    def pooling_mask(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return features["text_mask"]
