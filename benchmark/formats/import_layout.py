"""Writes an import's internal layout: items, the item id map, users and media, under the renumbered item ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from benchmark.data.raw import RawDataset
from benchmark.modalities.media import stored_files
from benchmark.modalities.registry import file_modalities


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

    for modality in file_modalities():
        name, suffix = modality.name, modality.item_suffix
        if not raw.has_media(name):
            continue
        folder = directory / str(modality.item_folder)
        folder.mkdir()
        if name in raw.media_stores:  # one file holding every item's: written out as the files it holds
            stored = list(stored_files(raw, name))
            for old in kept_items:
                (folder / f"{new_id[old]}{suffix}").write_bytes(stored[old - 1][1].getvalue())
            continue
        paths = raw.media_paths(name)
        for old in kept_items:
            source = paths[old - 1]
            if source is not None:
                place(source, folder / f"{new_id[old]}{suffix}")
