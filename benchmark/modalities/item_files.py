"""Reading the files items keep: pictures decoded to pixels, and a modality's store (one LMDB holding every item's
file). Apart from the checks in `media` because it imports torch, which validation's import must not."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch

from benchmark.data.dataset import require_media
from benchmark.data.raw import RawDataset
from benchmark.errors import DatasetError
from benchmark.modalities.media import IMAGE


def load_images(raw: RawDataset, image_size: int) -> torch.Tensor:
    """uint8 pixels [n_items + 1, 3, size, size]; row 0 is padding. Missing or unreadable images are errors."""
    from PIL import Image

    pixels = torch.zeros((raw.n_items + 1, 3, image_size, image_size), dtype=torch.uint8)
    for index, (where, source) in enumerate(image_sources(raw), start=1):
        try:
            with Image.open(source) as image:
                image = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                pixels[index] = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        except OSError as error:
            raise DatasetError(f"{where}: unreadable image for item '{raw.item_keys[index - 1]}': {error}") from error
    return pixels


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
