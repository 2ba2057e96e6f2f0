"""Text: item titles as token ids and attention masks (hashed ids for random towers, the tokenizer for real ones)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmark.modalities.registry import Modality, register_modality

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import Tower
    from benchmark.suite.config import TowerConfig


@functools.cache
def _passes_4d_masks_through(model_class: type) -> bool:
    """Whether a transformers encoder builds its attention mask with `create_bidirectional_mask`, which returns an
    already prepared 4D mask unchanged (transformers releases before that helper would reject one)."""
    module = sys.modules.get(model_class.__module__)
    return module is not None and hasattr(module, "create_bidirectional_mask")


def _takes_prepared_mask(tower: Tower) -> bool:
    model = tower.model.get_base_model() if hasattr(tower.model, "get_base_model") else tower.model
    config = tower.model_config
    # Decoder LLMs build a causal mask and handle fully padded rows their own way: they keep the 2D mask.
    return tower.pooling == "cls" and not getattr(config, "is_decoder", False) and _passes_4d_masks_through(type(model))


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
        mask = features["text_mask"]
        if _takes_prepared_mask(tower):
            # Given a 2D mask, transformers asks `mask.all()` to decide whether attention needs a mask at all: a
            # host-device synchronisation in every step. Its 4D form ([n, 1, 1, tokens], True: attend) is used as
            # it is. The first token (CLS) is always attended, so no query row is ever fully masked.
            keys = mask != 0
            keys[:, 0] = True
            return {"input_ids": features["text_ids"], "attention_mask": keys[:, None, None, :]}
        return {"input_ids": features["text_ids"], "attention_mask": mask}

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        return f"tokens={tower_config.max_tokens}"

    def pooling_mask(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return features["text_mask"]
