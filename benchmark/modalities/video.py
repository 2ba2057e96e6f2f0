"""Video: one clip per item (`video/<item_id>.npy`, uint8 [frames, 3, s, s]), resampled to the tower's frames."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F

from benchmark.modalities.registry import Modality, register_modality

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import Tower
    from benchmark.suite.config import TowerConfig


@register_modality
class Video(Modality):
    name = "video"
    description = "one clip per item (video/<item_id>.npy, uint8 [frames, 3, size, size])"
    feature_keys = ("video",)
    seed_offset = 2
    takes_image_size = True
    item_folder = "video"

    def features(self, raw: RawDataset, tower: Tower, tower_config: TowerConfig) -> dict[str, torch.Tensor]:
        from benchmark.data.dataset import load_array_media

        return {"video": load_array_media(raw, "video", torch.uint8)}

    def model_inputs(self, tower: Tower, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """uint8 [n, frames, 3, s, s] -> normalised [n, num_frames, 3, size, size], resampled on the device."""
        clip = features["video"].float().div_(255.0).permute(0, 2, 1, 3, 4)  # [n, 3, T, s, s]
        size = cast(int, tower.image_size)  # set for every tower that takes an image size
        target = (tower.model_config.num_frames, size, size)
        if tuple(clip.shape[2:]) != target:
            clip = F.interpolate(clip, size=target, mode="trilinear", align_corners=False)
        clip = clip.permute(0, 2, 1, 3, 4)
        return {"pixel_values": (clip - tower.image_mean.unsqueeze(1)) / tower.image_std.unsqueeze(1)}

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        return f"frames={tower.model_config.num_frames},pixels={tower.image_size}"
