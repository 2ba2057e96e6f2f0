"""Text: item titles as token ids and attention masks (hashed ids for random towers, the tokenizer for real ones)."""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, cast

import torch

from benchmark.modalities.registry import Modality, register_modality

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import PeftWrapped, Tower
    from benchmark.suite.config import TowerConfig


@functools.cache
def _mask_builders(model_class: type) -> frozenset[str]:
    """Which of transformers' mask builders a model's module uses; both return an already prepared 4D mask unchanged
    (transformers releases before them would reject one)."""
    module = sys.modules.get(model_class.__module__)
    return frozenset(name for name in ("create_bidirectional_mask", "create_causal_mask") if hasattr(module, name))


def _prepared_mask_kind(tower: Tower) -> str | None:
    """'bidirectional' (encoders), 'causal' (decoder LLMs with full attention in every layer), or None: give the
    model the 2D mask."""
    wrapped = hasattr(tower.model, "get_base_model")
    model = cast("PeftWrapped", tower.model).get_base_model() if wrapped else tower.model
    config = tower.model_config
    model_class: type = type(model)  # mypy sees type[Module] as unhashable (Module's __hash__ is an instance method)
    builders = _mask_builders(model_class)
    if tower.pooling == "cls" and not getattr(config, "is_decoder", False):
        return "bidirectional" if "create_bidirectional_mask" in builders else None
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    return "causal" if "create_causal_mask" in builders and layer_types == {"full_attention"} else None


def prepared_attention_mask(mask: torch.Tensor, kind: str) -> torch.Tensor:
    """The 4D boolean mask (True: attend) the model would build from a 2D padding mask, built without asking the
    device whether any token is padding. Bidirectional: [n, 1, 1, tokens], the first token (CLS) always attended.
    Causal: [n, 1, tokens, tokens], earlier valid tokens, and every token itself so that no row is fully masked (a
    padding position's state is never pooled)."""
    keys = mask != 0
    if kind == "bidirectional":
        keys[:, 0] = True
        return keys[:, None, None, :]
    length = mask.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    itself = torch.eye(length, dtype=torch.bool, device=mask.device)
    return ((causal & keys[:, None, :]) | itself)[:, None]


@register_modality
class Text(Modality):
    name = "text"
    description = "item titles, max_tokens tokens each"
    feature_keys = ("text_ids", "text_mask")
    counts_tokens = True
    seed_offset = 0

    def sequence_length(self, tower_entry: dict[str, Any], model_config: dict[str, Any]) -> int:
        return int(tower_entry["max_tokens"])

    def features(self, raw: RawDataset, tower: Tower, tower_config: TowerConfig) -> dict[str, torch.Tensor]:
        from benchmark.modalities.tokenize import hash_tokenize, pretrained_tokenize

        titles = [""] + raw.titles  # row 0: padding item
        if tower.weights_dir is None:  # random weights: no vocabulary to tokenize with
            ids, mask = hash_tokenize(titles, tower_config.max_tokens, tower.model_config.vocab_size)
        else:
            ids, mask = pretrained_tokenize(titles, tower_config.max_tokens, tower.weights_dir)
        return {"text_ids": ids, "text_mask": mask}

    def model_inputs(self, tower: Tower, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = features["text_mask"]
        kind = _prepared_mask_kind(tower)
        if kind is not None:
            # Given a 2D mask, transformers asks `mask.all()` to decide whether attention needs a mask at all: a
            # host-device synchronisation in every step. The 4D form is used as it is.
            return {"input_ids": features["text_ids"], "attention_mask": prepared_attention_mask(mask, kind)}
        return {"input_ids": features["text_ids"], "attention_mask": mask}

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        return f"tokens={tower_config.max_tokens}"

    def pooling_mask(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return features["text_mask"]
