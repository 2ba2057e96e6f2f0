"""Tower presets: architecture configs shipped as JSON, so towers build offline; plug-in modules add their own
with `register_preset` (a tower for a plug-in modality needs one)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmark.plugins import BUILT_IN, registering_from
from benchmark.registry import Registry

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


PRESETS: Registry[TowerPreset] = Registry("tower preset")


@cache
def _register_shipped() -> None:
    """The presets shipped as JSON, registered once, before any plug-in's (so a plug-in cannot take their names)."""
    with registering_from(BUILT_IN):
        for path in sorted(PRESET_DIR.glob("*.json")):
            preset = preset_from_json(_read_json(path))
            PRESETS.register(preset.name, preset)


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def register_preset(preset: TowerPreset) -> TowerPreset:
    """A preset from outside the package (a module named in MMBENCH_PLUGINS); a shipped preset's name is taken."""
    _register_shipped()
    return PRESETS.register(preset.name, preset)


def preset_names() -> list[str]:
    _register_shipped()
    return PRESETS.names()


def get_preset(name: str) -> TowerPreset:
    _register_shipped()
    return PRESETS.get(name)
