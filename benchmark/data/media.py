"""Are the media files a dataset's towers read all there (and, with `decode`, readable)? One check for
`validate` (presence; `--deep` decodes) and `data inspect`, so that what the cell would meet while loading
features is found before it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data.problems import DatasetProblem
from benchmark.data.raw import RawDataset


def media_modalities(modalities: list[str]) -> list[str]:
    """The modalities of `modalities` whose towers read one media file per item: images, and every modality a
    dataset stores as `<folder>/<item_id>.npy` arrays (video, audio, ...). Text comes from the item table."""
    from benchmark.modalities.registry import get_modality

    return [m for m in modalities if m == "image" or get_modality(m).array_folder is not None]


def media_problems(raw: RawDataset, modality: str, decode: bool = False) -> list[DatasetProblem]:
    """One problem per item whose `modality` file is missing (or, with `decode`, does not decode)."""
    if modality == "image":
        from benchmark.data.importer import check_images, no_image

        if decode or raw.image_lmdb is not None:
            return check_images(raw, verify=decode)
        # Presence only: the reader listed the folder already, so this opens no file.
        return [no_image(raw, key) for key, path in zip(raw.item_keys, raw.image_paths) if path is None]
    return _array_problems(raw, modality, decode)


def _array_problems(raw: RawDataset, modality: str, decode: bool) -> list[DatasetProblem]:
    from benchmark.modalities.registry import get_modality

    folder = Path(raw.source) / str(get_modality(modality).array_folder)
    problems = []
    first_shape: tuple[int, ...] | None = None
    for key, path in zip(raw.item_keys, raw.media_paths(modality)):
        if path is None:
            expected = folder / f"{key}.npy"
            problems.append(DatasetProblem("no media", f"item '{key}': no {modality} at {expected}", item=key))
            continue
        if not decode:
            continue
        try:
            shape = np.load(path).shape  # the whole array: what the cell stacks
        except (OSError, ValueError) as error:
            problems.append(
                DatasetProblem(
                    "unreadable media", f"unreadable {modality} for item '{key}' ({error})", str(path), item=key
                )
            )
            continue
        first_shape = first_shape or shape
        if shape != first_shape:
            problems.append(
                DatasetProblem(
                    "unreadable media",
                    f"{modality} of item '{key}' has shape {shape}, the first item's {first_shape}",
                    str(path),
                    item=key,
                )
            )
    return problems
