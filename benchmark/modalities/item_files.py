"""Pictures decoded to pixels for an image tower. Apart from the checks in `media` because it imports torch, which
validation's import must not."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.data.raw import RawDataset
from benchmark.errors import DatasetError
from benchmark.modalities.media import image_sources


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
