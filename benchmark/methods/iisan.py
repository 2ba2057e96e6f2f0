"""IISAN: intra- and inter-modal side adapted networks over frozen text and image towers.

`iisan` runs the towers every step (forward only, no autograd graph); `iisan_cached` trains
from the hidden-state cache, with the towers not on the device at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.blocks import Activation
from benchmark.methods.registry import register_method
from benchmark.methods.side_encoder import SideItemEncoder, SideNetworkMethod, SidePlan, check_indices
from benchmark.methods.side_network import InterModalSAN, IntraModalSAN, every_nth_layer, projection_head
from benchmark.suite.config import setting


@dataclass(frozen=True)
class IISANOptions:
    bottleneck: int = setting(64, minimum=1, help="side adapter width (768 -> 64 -> 768)")
    activation: Activation = setting("gelu")
    layer_stride: int = setting(2, minimum=1, help="keep hidden states 0, stride, 2*stride, ... (layer dropping)")
    layers: tuple[int, ...] = setting((), minimum=0, help="explicit hidden-state indices (overrides layer_stride)")


class IISANItemEncoder(SideItemEncoder):
    def __init__(self, plan: SidePlan, options: IISANOptions):
        super().__init__(plan)
        towers, layer_indices, embed_dim = plan.towers, plan.layer_indices, plan.embed_dim
        bottleneck, activation = options.bottleneck, options.activation
        width, blocks = towers["text"].hidden_size, len(layer_indices["text"])
        self.text_san = IntraModalSAN(blocks, width, bottleneck, activation)
        self.image_san = IntraModalSAN(blocks, width, bottleneck, activation)
        self.inter_san = InterModalSAN(blocks, width, bottleneck, activation)
        self.text_head = projection_head(width, embed_dim)
        self.image_head = projection_head(width, embed_dim)
        self.inter_head = projection_head(width, embed_dim)
        self.fusion = nn.Linear(3 * embed_dim, embed_dim)

    def side_forward(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        text, image = states["text"], states["image"]
        parts = [
            self.text_head(self.text_san(text)),
            self.image_head(self.image_san(image)),
            self.inter_head(self.inter_san(image, text)),
        ]
        return self.fusion(torch.cat(parts, dim=-1))


class _IISAN(SideNetworkMethod):
    Options = IISANOptions
    Encoder = IISANItemEncoder
    required_modalities = ("text", "image")
    allowed_modalities = ("text", "image")

    def layer_plan(self, towers: dict[str, nn.Module]) -> dict[str, list[int]]:
        explicit = self.options.layers
        return {
            modality: check_indices(
                tower, list(explicit) if explicit else every_nth_layer(tower.num_layers, self.options.layer_stride)
            )
            for modality, tower in towers.items()
        }

    def check_plan(self, plan: SidePlan) -> None:
        indices = plan.layer_indices
        text, image = plan.towers["text"], plan.towers["image"]
        if text.hidden_size != image.hidden_size or len(indices["text"]) != len(indices["image"]):
            raise TowerError(
                f"IISAN needs symmetric towers: text '{text.preset_name}' keeps {len(indices['text'])} states of width "
                f"{text.hidden_size}, image '{image.preset_name}' keeps {len(indices['image'])} of width "
                f"{image.hidden_size}; "
                "use iisan_versa for asymmetric towers"
            )


@register_method
class IISAN(_IISAN):
    name = "iisan"
    description = "IISAN, uncached: frozen towers run every step (forward only), intra/inter-modal side networks train"


@register_method
class IISANCached(_IISAN):
    name = "iisan_cached"
    description = "IISAN, cached: kept hidden states computed once to a memory-mapped cache; towers never on the device"
    uses_cache = True
