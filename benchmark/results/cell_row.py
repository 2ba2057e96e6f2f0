"""The descriptive columns of a row, taken from the cell config (no torch needed: the parent uses it too)."""

from __future__ import annotations

import json
from typing import Any

from benchmark.suite.config import CellConfig, TowerConfig
from benchmark.suite.matrix import config_hash, config_id


def _preset(tower: TowerConfig | None) -> str | None:
    return tower.preset if tower is not None else None


def describe_cell(config: CellConfig, row: dict[str, Any]) -> None:
    towers = config.towers
    row.update(
        suite=config.suite,
        cell_id=config.cell_id,
        config_json=json.dumps(config.to_dict(), sort_keys=True),
        config_hash=config_hash(config),
        config_id=config_id(config),
        repeat=config.repeat,
        dataset=config.dataset.name,
        towers=towers.name,
        # Columns for the built-in modalities; a plug-in modality's tower is in config_json (and `towers`).
        **{f"{modality}_tower": _preset(towers.get(modality)) for modality in ("text", "image", "video", "audio")},
        method=config.method.name,
        method_label=config.method.label,
        precision=config.train.precision,
        batch_size=config.train.batch_size,
        max_seq_len=config.train.max_seq_len,
        seed=config.seed,
        warmup_steps=config.train.warmup_steps,
    )
