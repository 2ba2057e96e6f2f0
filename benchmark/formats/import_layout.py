"""Writes an import's internal layout: items, the item id map, users and media, under the renumbered item ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from benchmark.data.raw import RawDataset


def write_layout(
    directory: Path,
    raw: RawDataset,
    kept_items: np.ndarray,
    new_id: np.ndarray,
    users: list[tuple[str, np.ndarray]],
    copy_media: bool,
) -> None:
    with (
        open(directory / "items.tsv", "w", encoding="utf-8") as items,
        open(directory / "item_map.tsv", "w", encoding="utf-8") as mapping,
    ):
        mapping.write("item_id\toriginal_item_id\n")
        for old in kept_items:
            items.write(f"{new_id[old]}\t{raw.titles[old - 1]}\n")
            mapping.write(f"{new_id[old]}\t{raw.item_keys[old - 1]}\n")
    with open(directory / "users.tsv", "w", encoding="utf-8") as handle:
        for user, sequence in users:
            handle.write(f"{user}\t{' '.join(map(str, new_id[sequence].tolist()))}\n")
    _write_media(directory, raw, kept_items, new_id, copy_media)


def _write_media(
    directory: Path, raw: RawDataset, kept_items: np.ndarray, new_id: np.ndarray, copy_media: bool
) -> None:
    def place(source: Path, target: Path) -> None:
        if copy_media:
            shutil.copyfile(source, target)
        else:
            target.symlink_to(source.resolve())

    if raw.image_lmdb is not None:
        from benchmark.data.dataset import image_sources

        (directory / "images").mkdir()
        sources = list(image_sources(raw))
        for old in kept_items:
            (directory / "images" / f"{new_id[old]}.jpg").write_bytes(sources[old - 1][1].getvalue())
    elif any(p is not None for p in raw.image_paths):
        (directory / "images").mkdir()
        for old in kept_items:
            if raw.image_paths[old - 1] is not None:
                place(raw.image_paths[old - 1], directory / "images" / f"{new_id[old]}.jpg")
    for modality, paths in raw.extra_paths.items():
        (directory / modality).mkdir()
        for old in kept_items:
            if paths[old - 1] is not None:
                place(paths[old - 1], directory / modality / f"{new_id[old]}.npy")
