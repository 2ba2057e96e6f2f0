"""Are the media files a dataset's towers read all there (and, with `decode`, readable)? The checks each modality's
`media_problems` runs, for `validate` (presence; `--deep` decodes) and `data inspect`, so that what the cell would
meet while loading features is found before it runs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from benchmark.data.problems import DatasetProblem
from benchmark.data.raw import RawDataset, require_media
from benchmark.errors import DatasetError

IMAGE = "image"  # the modality whose files check_images reads (pictures, in a folder or an LMDB)


def array_problems(raw: RawDataset, modality: str, decode: bool) -> list[DatasetProblem]:
    """One problem per item whose `<folder>/<item>.npy` is missing (with `decode`: unreadable, or shaped unlike the
    first item's)."""
    folder = raw.media_folders.get(modality, Path(raw.source) / modality)
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


def no_image(raw: RawDataset, key: str) -> DatasetProblem:
    folder = raw.media_folders.get(IMAGE)
    where_expected = f" at {folder / f'{key}.jpg'}" if folder is not None else ""
    return DatasetProblem("no image", f"item '{key}': no image{where_expected}", item=key)


def check_images(raw: RawDataset, verify: bool) -> list[DatasetProblem]:
    """One problem per item whose image is missing or unreadable (header check; full decode with `verify`)."""
    from PIL import Image

    sources: list[tuple[str | None, Any]]  # (where, file or bytes stream); (None, None) for a missing image
    store = raw.media_stores.get(IMAGE)
    if store is not None:
        try:
            sources = list(image_sources(raw))
        except DatasetError as error:
            return [DatasetProblem("other", str(error), str(store))]
    else:
        sources = [(str(path), path) if path is not None else (None, None) for path in raw.media_paths(IMAGE)]
    problems = []
    for key, (where, source) in zip(raw.item_keys, sources):
        if source is None:
            problems.append(no_image(raw, key))
            continue
        try:
            with Image.open(source) as image:  # reads the header
                if verify:
                    image.load()  # decodes every pixel, as the cell will
        except Exception as error:  # noqa: BLE001 - PIL raises many types for a bad file; each is "unreadable"
            problems.append(
                DatasetProblem(
                    "unreadable image", f"unreadable image for item '{key}' ({type(error).__name__})", where, item=key
                )
            )
    return problems


def image_sources(raw: RawDataset) -> Iterator[tuple[str, Any]]:
    """(where, file or bytes stream) per item, in item order; missing images are one error listing them."""
    if IMAGE in raw.media_stores:
        yield from stored_files(raw, IMAGE)
        return
    for path in require_media(raw, IMAGE, f"{raw.media_folders.get(IMAGE, IMAGE)}/"):
        yield str(path), path


def stored_files(raw: RawDataset, modality: str) -> Iterator[tuple[str, io.BytesIO]]:
    """(where, bytes) of every item's file in the modality's store (an LMDB keyed by item id), in item order;
    items missing from it are one error listing them."""
    store = raw.media_stores[modality]
    try:
        import lmdb
    except ImportError as error:
        raise DatasetError(
            f"{store}: reading {modality} files from LMDB needs the lmdb package (pip install lmdb)"
        ) from error
    environment = lmdb.open(str(store), readonly=True, lock=False, subdir=store.is_dir())
    try:
        with environment.begin() as transaction:
            values = [transaction.get(key.encode()) for key in raw.item_keys]
        missing = [key for key, value in zip(raw.item_keys, values) if value is None]
        if missing:
            listed = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise DatasetError(
                f"{store}: {len(missing)} of {raw.n_items} items have no {modality} in the LMDB ({listed})"
            )
        for key, value in zip(raw.item_keys, values):
            yield f"{store}[{key}]", io.BytesIO(cast(bytes, value))  # none missing: checked above
    finally:
        environment.close()
