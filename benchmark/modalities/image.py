"""Image: one picture per item (a folder of <item_id>.jpg or an LMDB), resized to the tower's image size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from benchmark.data.problems import DatasetProblem
from benchmark.modalities.media import check_images, no_image
from benchmark.modalities.registry import Modality, register_modality

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import Tower
    from benchmark.suite.config import TowerConfig


@register_modality
class Image(Modality):
    name = "image"
    description = "one picture per item, uint8 pixels at the tower's image_size"
    feature_keys = ("pixels",)
    seed_offset = 1
    takes_image_size = True
    item_folder = "images"
    item_suffix = ".jpg"
    item_store = "images.lmdb"

    def sequence_length(self, tower_entry: dict[str, Any], model_config: dict[str, Any]) -> int:
        if not model_config.get("patch_size"):
            return 1
        side = int(tower_entry.get("image_size") or model_config.get("image_size") or 0) // int(
            model_config["patch_size"]
        )
        return side * side + 1  # patches and the CLS token

    def media_problems(self, raw: RawDataset, decode: bool) -> list[DatasetProblem]:
        if decode or self.name in raw.media_stores:
            return check_images(raw, verify=decode)
        # Presence only: the reader listed the folder already, so this opens no file.
        return [no_image(raw, key) for key, path in zip(raw.item_keys, raw.media_paths(self.name)) if path is None]

    def features(self, raw: RawDataset, tower: Tower, tower_config: TowerConfig) -> dict[str, torch.Tensor]:
        from benchmark.modalities.item_files import load_images

        assert tower.image_size is not None  # set for every tower that takes an image size
        return {"pixels": load_images(raw, tower.image_size)}

    def model_inputs(self, tower: Tower, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # uint8 travels to the device (4x less than float); normalising happens there, in one pass:
        # (p / 255 - mean) / std = p * (1 / (255 std)) - mean / std.
        scale = 1.0 / (255.0 * tower.image_std)
        return {"pixel_values": torch.addcmul(-tower.image_mean / tower.image_std, features["pixels"], scale)}

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        return f"pixels={tower.image_size}"
