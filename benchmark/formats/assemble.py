"""A read dataset put together: its items, sequences, and the media files each modality stores per item."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from benchmark.data.problems import DatasetProblem
from benchmark.data.raw import ItemTable, RawDataset, media_files
from benchmark.modalities.registry import file_modalities


def assemble(
    directory: Path,
    items: ItemTable,
    user_keys: list[str],
    sequences: list[list[int]],
    problems: list[DatasetProblem],
    folders: Mapping[str, Path] | None = None,
) -> RawDataset:
    """The dataset a reader found, with the files of every modality that reads one per item: each modality's
    `<item_folder>/<item_id><item_suffix>` in `directory` (`folders` names another folder for a modality, where a
    format keeps it elsewhere), or its `item_store` beside them when the folder is absent."""
    media: dict[str, list[Path | None]] = {}
    media_folders: dict[str, Path] = {}
    media_stores: dict[str, Path] = {}
    for modality in file_modalities():
        folder = (folders or {}).get(modality.name, directory / str(modality.item_folder))
        media_folders[modality.name] = folder
        if folder.is_dir():
            media[modality.name] = media_files(folder, items.keys, modality.item_suffix)
        elif modality.item_store is not None and (directory / modality.item_store).exists():
            media_stores[modality.name] = directory / modality.item_store
    return RawDataset(
        str(directory),
        items.keys,
        items.titles,
        user_keys,
        sequences,
        media=media,
        media_folders=media_folders,
        media_stores=media_stores,
        problems=problems,
    )
