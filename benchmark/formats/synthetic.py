"""Synthetic data, deterministic by seed, generated once into the cache in the amazon-iisan layout (so the real
reader is exercised). The generator is benchmark/data/synthetic.py."""

from __future__ import annotations

from typing import Any

from benchmark.data.synthetic import ensure_synthetic
from benchmark.formats.amazon_iisan import read_amazon_iisan
from benchmark.formats.registry import DatasetFormat, register_format

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

register_format(
    DatasetFormat(
        "synthetic",
        read=read_amazon_iisan,
        needs_path=False,
        options=SYNTHETIC_OPTIONS,
        generate=ensure_synthetic,
        importable=False,
        description="deterministic users/items/titles/images with latent clusters, written in the amazon-iisan layout",
    )
)
