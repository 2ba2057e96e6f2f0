"""A toy modality: a glyph per item, drawn from its title's hash (no files), read by a ViT-shaped tower."""

import hashlib

import torch

from benchmark.modalities.registry import Modality, register_modality
from benchmark.models.presets_registry import get_preset, register_preset


@register_modality
class Glyph(Modality):
    name = "glyph"
    description = "a 16x16 glyph per item, drawn from its title"
    feature_keys = ("glyph",)
    seed_offset = 9
    takes_image_size = True

    def features(self, raw, tower, tower_config):
        glyphs = torch.zeros((raw.n_items + 1, 3, 16, 16), dtype=torch.uint8)
        for index, title in enumerate(raw.titles, start=1):
            seed = int(hashlib.sha256(title.encode()).hexdigest()[:8], 16)
            glyphs[index] = torch.randint(0, 256, (3, 16, 16), generator=torch.Generator().manual_seed(seed))
        return {"glyph": glyphs}

    def model_inputs(self, tower, features):
        glyph = features["glyph"].float().div(255.0)
        glyph = torch.nn.functional.interpolate(glyph, size=(tower.image_size, tower.image_size), mode="nearest")
        return {"pixel_values": (glyph - tower.image_mean) / tower.image_std}

    def input_shape(self, tower, tower_config):
        return f"glyph=16,pixels={tower.image_size}"


micro = get_preset("vit-micro")
register_preset(type(micro)(**{**micro.__dict__, "name": "glyph-micro", "modality": "glyph"}))
