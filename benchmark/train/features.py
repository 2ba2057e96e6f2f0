"""A cell's towers and the item features they read (each modality loads its own: benchmark/modalities)."""

from __future__ import annotations

from typing import Any, cast

import torch

from benchmark.data.dataset import ItemFeatures
from benchmark.data.raw import RawDataset
from benchmark.modalities.registry import get_modality, modality_names
from benchmark.models.towers import Tower, build_tower
from benchmark.suite.config import TowerConfig, TowerSetConfig, build


def build_towers_and_features(
    tower_set: TowerSetConfig | dict[str, Any], seed: int, raw: RawDataset
) -> tuple[dict[str, Tower], dict[str, TowerConfig], ItemFeatures]:
    """A tower set's towers (random weights seeded by `seed`), their suite entries, and the item features they read."""
    if isinstance(tower_set, dict):
        tower_set = cast(TowerSetConfig, build(TowerSetConfig, tower_set))  # build() returns Any
    tower_configs = tower_set.present(modality_names())
    towers = {modality: build_tower(modality, tower_config, seed) for modality, tower_config in tower_configs.items()}
    return towers, tower_configs, build_item_features(raw, towers, tower_configs)


def build_item_features(
    raw: RawDataset, towers: dict[str, Tower], tower_configs: dict[str, TowerConfig]
) -> ItemFeatures:
    tensors: dict[str, torch.Tensor] = {}
    for modality, tower in towers.items():
        tensors.update(get_modality(modality).features(raw, tower, tower_configs[modality]))
    return ItemFeatures(tensors)
