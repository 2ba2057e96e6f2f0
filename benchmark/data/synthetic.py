"""A deterministic synthetic dataset with learnable structure, written in the amazon-iisan layout.

Items belong to latent clusters; a cluster's words appear in its titles and its colour and
stripe orientation in its images; users mostly stay within a cluster. A model that reads
titles or pixels can therefore beat popularity, which makes accuracy checks meaningful.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.atomic import atomic_directory
from benchmark.data.cache_root import cache_root, unwritable_cache

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "da", "fe", "gi", "hu", "ja"]
_GENERIC = ["classic", "new", "premium", "edition", "pack", "deluxe", "mini", "pro", "set", "original"]


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_SYLLABLES, size=3))


def synthetic_dir(options: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "datasets" / f"synthetic-{key}"


def ensure_synthetic(options: dict[str, Any]) -> Path:
    """Generate the dataset once per option set; a half-written directory is never visible."""
    target = synthetic_dir(options)
    if (target / "COMPLETE").exists():
        return target
    try:
        # Another process may finish first: its copy is identical (deterministic by seed) and stays.
        with atomic_directory(target) as staging:
            write_synthetic(staging, options)
            (staging / "COMPLETE").write_text(json.dumps(options, sort_keys=True))
    except OSError as error:
        raise unwritable_cache(target.parent, error) from error
    return target


def write_clip(path: Path, colour: np.ndarray, angle: float, options: dict[str, Any], rng: np.random.Generator) -> None:
    """uint8 [frames, 3, size, size]: the cluster's stripes drifting over time."""
    frames, size = options["video_frames"], options["video_size"]
    yy, xx = np.mgrid[0:size, 0:size]
    clip = np.empty((frames, 3, size, size), dtype=np.uint8)
    for frame in range(frames):
        phase = 2 * np.pi * frame / max(frames, 1)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 8 * np.pi / size + phase) > 0
        pixels = colour[:, None, None] * (0.6 + 0.4 * stripes[None]) + rng.normal(0, 12, size=(3, size, size))
        clip[frame] = np.clip(pixels, 0, 255)
    np.save(path, clip)


def write_spectrogram(
    path: Path, cluster: int, n_clusters: int, options: dict[str, Any], rng: np.random.Generator
) -> None:
    """float16 [frames, mel bins]: a band of energy whose pitch is the cluster's, over noise (standardised log-mel
    scale)."""
    frames, mels = options["audio_frames"], options["audio_mels"]
    band = (cluster + 0.5) * mels / n_clusters
    bins = np.arange(mels)[None, :]
    spectrogram = 2.0 * np.exp(-((bins - band) ** 2) / (2 * (mels / (4 * n_clusters)) ** 2)) + rng.normal(
        0, 0.3, size=(frames, mels)
    )
    np.save(path, spectrogram.astype(np.float16))


def write_synthetic(directory: Path, options: dict[str, Any]) -> None:
    from PIL import Image

    rng = np.random.default_rng(options["seed"])
    n_items, n_users, n_clusters = options["items"], options["users"], options["clusters"]
    size = options["image_size"]
    cluster_words = [[_word(rng) for _ in range(6)] for _ in range(n_clusters)]
    cluster_colour = rng.integers(30, 226, size=(n_clusters, 3))
    item_cluster = rng.integers(0, n_clusters, size=n_items)
    (directory / "images").mkdir(parents=True)
    for modality in ("video", "audio"):
        if options.get(modality):
            (directory / modality).mkdir()
    yy, xx = np.mgrid[0:size, 0:size]
    with open(directory / "items.tsv", "w") as items_file:
        for item in range(n_items):
            cluster = item_cluster[item]
            words = list(rng.choice(cluster_words[cluster], size=3, replace=False)) + list(rng.choice(_GENERIC, size=2))
            rng.shuffle(words)
            items_file.write(f"i{item}\t{' '.join(words)}\n")
            angle = np.pi * cluster / n_clusters
            stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 12 * np.pi / size) > 0)[..., None]
            pixels = cluster_colour[cluster] * (0.6 + 0.4 * stripes) + rng.normal(0, 12, size=(size, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                directory / "images" / f"i{item}.jpg", quality=90
            )
            if options.get("video"):
                write_clip(directory / "video" / f"i{item}.npy", cluster_colour[cluster], angle, options, rng)
            if options.get("audio"):
                write_spectrogram(directory / "audio" / f"i{item}.npy", cluster, n_clusters, options, rng)
    members = [np.flatnonzero(item_cluster == c) for c in range(n_clusters)]
    # Popularity skew inside each cluster (Zipf-like), so a popularity baseline is non-trivial.
    weights = [1.0 / np.arange(1, len(m) + 1) ** 0.8 for m in members]
    with open(directory / "users.tsv", "w") as users_file:
        for user in range(n_users):
            length = int(rng.integers(options["min_len"], options["max_len"] + 1))
            cluster = int(rng.integers(n_clusters))
            sequence: list[int] = []
            while len(sequence) < length:
                if sequence and rng.random() > options["stay_prob"]:
                    cluster = int(rng.integers(n_clusters))
                if len(members[cluster]) == 0:
                    cluster = int(rng.integers(n_clusters))
                    continue
                probabilities = weights[cluster] / weights[cluster].sum()
                item = int(rng.choice(members[cluster], p=probabilities))
                if item in sequence[-3:] and len(members[cluster]) > 3:
                    continue  # avoid immediate repeats where the cluster allows it
                sequence.append(item)
            users_file.write(f"u{user}\t{' '.join(f'i{i}' for i in sequence)}\n")
