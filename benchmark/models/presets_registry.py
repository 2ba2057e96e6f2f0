"""Tower presets: architecture configs shipped as JSON, so towers build offline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmark.errors import UnknownNameError

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class TowerPreset:
    name: str
    modality: str  # "text" | "image" | "video" | "audio"
    model_type: str  # transformers model_type
    shape_of: str  # which public checkpoint the architecture mirrors
    config: dict[str, Any]
    pooling: str = "cls"  # "cls": first token's state; "mean": mean over valid tokens (decoder LLMs, VideoMAE)
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)


@cache
def _load_presets() -> dict[str, TowerPreset]:
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        presets[data["name"]] = TowerPreset(
            name=data["name"],
            modality=data["modality"],
            model_type=data["model_type"],
            shape_of=data.get("shape_of", ""),
            config=data["config"],
            pooling=data.get("pooling", "cls"),
            image_mean=tuple(data.get("image_mean", (0.5, 0.5, 0.5))),
            image_std=tuple(data.get("image_std", (0.5, 0.5, 0.5))),
        )
    return presets


def preset_names() -> list[str]:
    return list(_load_presets())


def get_preset(name: str) -> TowerPreset:
    presets = _load_presets()
    if name not in presets:
        raise UnknownNameError(f"unknown tower preset '{name}' (known: {', '.join(presets)})")
    return presets[name]
