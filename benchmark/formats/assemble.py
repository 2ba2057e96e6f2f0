"""A read dataset put together: its items, sequences, and the media files each modality stores per item."""

from __future__ import annotations

from pathlib import Path

from benchmark.data.problems import DatasetProblem
from benchmark.data.raw import ItemTable, RawDataset, image_lmdb, media_files
from benchmark.modalities.registry import array_modalities


def assemble(
    directory: Path,
    items: ItemTable,
    user_keys: list[str],
    sequences: list[list[int]],
    image_dir: Path,
    problems: list[DatasetProblem],
) -> RawDataset:
    """The dataset a reader found: images as `image_dir/<item_id>.jpg` (or `images.lmdb` beside them), optional
    `<item_id>.npy` folders in `directory` for the modalities stored as arrays (video/, audio/, ...)."""
    folders = {modality.name: directory / str(modality.array_folder) for modality in array_modalities()}
    extra = {name: media_files(folder, items.keys, ".npy") for name, folder in folders.items() if folder.is_dir()}
    images = media_files(image_dir, items.keys, ".jpg")
    lmdb = image_lmdb(directory, image_dir)
    return RawDataset(
        str(directory), items.keys, items.titles, images, user_keys, sequences, extra, lmdb, problems, image_dir
    )
