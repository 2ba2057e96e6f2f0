"""Audio: one spectrogram per item (`audio/<item_id>.npy`, [frames, mels]), resampled to the tower's input shape."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from benchmark.modalities.registry import Modality, register_modality

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import Tower
    from benchmark.suite.config import TowerConfig


def _spectrogram_shape(tower: Tower) -> tuple[int, int]:
    return (tower.model_config.max_length, tower.model_config.num_mel_bins)


@register_modality
class Audio(Modality):
    name = "audio"
    description = "one spectrogram per item (audio/<item_id>.npy, [frames, mel bins])"
    feature_keys = ("audio",)
    seed_offset = 3
    item_folder = "audio"

    def features(self, raw: RawDataset, tower: Tower, tower_config: TowerConfig) -> dict[str, torch.Tensor]:
        from benchmark.data.dataset import load_array_media

        return {"audio": load_array_media(raw, "audio", torch.float16)}

    def model_inputs(self, tower: Tower, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Stored spectrograms are resampled to the tower's input shape on the device.
        spectrogram = features["audio"].float().unsqueeze(1)
        resampled = F.interpolate(spectrogram, size=_spectrogram_shape(tower), mode="bilinear", align_corners=False)
        return {"input_values": resampled.squeeze(1)}

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        return f"spectrogram={_spectrogram_shape(tower)}"
