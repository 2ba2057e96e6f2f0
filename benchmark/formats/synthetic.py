"""Synthetic data, deterministic by seed, generated once into the cache in the amazon-iisan layout (so the real
reader is exercised). The generator is benchmark/data/synthetic.py."""

from __future__ import annotations

from typing import Any

from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE
from benchmark.data.synthetic import ensure_synthetic, synthetic_dir
from benchmark.formats.amazon_iisan import read_amazon_iisan
from benchmark.formats.registry import DatasetFormat, PredictedData, register_format

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


def predict_synthetic(options: dict[str, Any]) -> PredictedData:
    """One sequence per user, lengths drawn from min_len..max_len; images always, clips and spectrograms when
    asked for."""
    problems: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    if options["max_len"] < MIN_SEQUENCE_LENGTH:
        problems.append(("max_len", f"max_len {options['max_len']} leaves no usable user: {RULE}"))
    elif options["min_len"] > options["max_len"]:
        problems.append(("min_len", f"min_len {options['min_len']} is above max_len {options['max_len']}"))
    elif options["min_len"] < MIN_SEQUENCE_LENGTH:
        warnings.append(
            (
                "min_len",
                f"users shorter than {MIN_SEQUENCE_LENGTH} items are dropped (min_len {options['min_len']}): {RULE}",
            )
        )
    media = ("image", *(modality for modality in ("video", "audio") if options[modality]))
    return PredictedData(
        options["users"], options["items"], options["max_len"], media, tuple(problems), tuple(warnings),
        "set `{modality}: true` in its options", (options["min_len"] + options["max_len"]) / 2,
    )  # fmt: skip


def synthetic_generated(options: dict[str, Any]) -> bool:
    return (synthetic_dir(options) / "COMPLETE").exists()


def synthetic_small_copy(options: dict[str, Any]) -> dict[str, Any]:
    """Eight users and items with the same media options: items whose files have the full data's shapes."""
    return {**options, "users": 8, "items": 8, "clusters": min(options["clusters"], 8), "min_len": 5, "max_len": 5}


register_format(
    DatasetFormat(
        "synthetic",
        read=read_amazon_iisan,
        needs_path=False,
        options=SYNTHETIC_OPTIONS,
        generate=ensure_synthetic,
        importable=False,
        predict=predict_synthetic,
        generated=synthetic_generated,
        small_copy=synthetic_small_copy,
        description="deterministic users/items/titles/images with latent clusters, written in the amazon-iisan layout",
    )
)
