"""Tower presets: architecture configs shipped as JSON, so towers build offline; plug-in modules add their own
with `register_preset` (a tower for a plug-in modality needs one)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmark.errors import UnknownNameError
from benchmark.plugins import load_plugins

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


_REGISTERED: dict[str, TowerPreset] = {}


def preset_from_json(data: dict[str, Any]) -> TowerPreset:
    return TowerPreset(
        name=data["name"],
        modality=data["modality"],
        model_type=data["model_type"],
        shape_of=data.get("shape_of", ""),
        config=data["config"],
        pooling=data.get("pooling", "cls"),
        image_mean=tuple(data.get("image_mean", (0.5, 0.5, 0.5))),
        image_std=tuple(data.get("image_std", (0.5, 0.5, 0.5))),
    )


@cache
def _shipped_presets() -> dict[str, TowerPreset]:
    return {preset.name: preset for preset in map(preset_from_json, map(_read_json, sorted(PRESET_DIR.glob("*.json"))))}


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def register_preset(preset: TowerPreset) -> TowerPreset:
    """A preset from outside the package (a module named in MMBENCH_PLUGINS)."""
    if preset.name in _shipped_presets() or _REGISTERED.get(preset.name, preset) != preset:
        raise ValueError(f"tower preset '{preset.name}' registered twice")
    _REGISTERED[preset.name] = preset
    return preset


def _load_presets() -> dict[str, TowerPreset]:
    load_plugins()
    return {**_shipped_presets(), **_REGISTERED}


def preset_names() -> list[str]:
    return list(_load_presets())


def get_preset(name: str) -> TowerPreset:
    presets = _load_presets()
    if name not in presets:
        raise UnknownNameError(f"unknown tower preset '{name}' (known: {', '.join(presets)})")
    return presets[name]
