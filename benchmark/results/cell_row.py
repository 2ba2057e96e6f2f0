"""The descriptive columns of a row, taken from the cell config (no torch needed: the parent uses it too)."""

from __future__ import annotations

import json
from typing import Any

from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import config_hash, config_id


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
        text_tower=towers.text.preset if towers.text else None,
        image_tower=towers.image.preset if towers.image else None,
        video_tower=towers.video.preset if towers.video else None,
        audio_tower=towers.audio.preset if towers.audio else None,
        method=config.method.name,
        method_label=config.method.label,
        precision=config.train.precision,
        batch_size=config.train.batch_size,
        max_seq_len=config.train.max_seq_len,
        seed=config.seed,
        warmup_steps=config.train.warmup_steps,
    )
