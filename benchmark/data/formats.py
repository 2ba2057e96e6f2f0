"""Dataset formats a suite can name. Each declares its options and whether it reads a path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import UnknownNameError


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    needs_path: bool
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


SYNTHETIC_OPTIONS: dict[str, Any] = {
    "users": 200,
    "items": 300,
    "clusters": 8,
    "min_len": 5,
    "max_len": 20,
    "image_size": 64,
    "stay_prob": 0.85,
    "seed": 0,
    # Optional modalities (CROSSAN): clips and spectrograms stored small, resampled by the tower on the device.
    "video": False,
    "video_frames": 4,
    "video_size": 32,
    "audio": False,
    "audio_frames": 128,
    "audio_mels": 32,
}

FORMATS = {
    "synthetic": DatasetFormat(
        "synthetic", needs_path=False, options=SYNTHETIC_OPTIONS,
        description="deterministic users/items/titles/images with latent clusters, written in the amazon-iisan layout",
    ),
    "amazon-iisan": DatasetFormat(
        "amazon-iisan", needs_path=True, options={},
        description="items.tsv (item_id, title), users.tsv (user_id, item ids oldest first), images/<item_id>.jpg",
    ),
    "microlens": DatasetFormat(
        "microlens", needs_path=True, options={},
        description="*_pairs.tsv (user, item ids oldest first), titles CSV (item_id,title), *covers/<item_id>.jpg, "
                    "optional video/ and audio/ <item_id>.npy",
    ),
    "recbole": DatasetFormat(
        "recbole", needs_path=True, options={},
        description="RecBole atomic files: <name>.inter (user_id, item_id, timestamp) and <name>.item (item_id, title), "
                    "optional images/<item_id>.jpg",
    ),
    "mmbench": DatasetFormat(
        "mmbench", needs_path=True, options={},
        description="the output of `mmbench data import`: filtered, truncated, remapped, ready to split",
    ),
}


def format_names() -> list[str]:
    return list(FORMATS)


def get_format(name: str) -> DatasetFormat:
    if name not in FORMATS:
        raise UnknownNameError(f"unknown dataset format '{name}' (known: {', '.join(FORMATS)})")
    return FORMATS[name]
