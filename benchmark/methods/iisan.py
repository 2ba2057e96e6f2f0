"""IISAN: intra- and inter-modal side adapted networks over frozen text and image towers.

`iisan` runs the towers every step (forward only, no autograd graph); `iisan_cached` trains
from the hidden-state cache, with the towers not on the device at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.fusions.registry import build_fusion
from benchmark.methods.registry import register_method
from benchmark.methods.side_encoder import SideItemEncoder, SideNetworkMethod, SidePlan, check_indices
from benchmark.methods.side_network import (
    GATE_TEMPERATURE,
    ParallelHeads,
    ParallelSANBs,
    SideAdapterOptions,
    every_nth_layer,
)
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


@dataclass(frozen=True)
class IISANOptions(SideAdapterOptions):
    layer_stride: int = setting(2, minimum=1, help="keep hidden states 0, stride, 2*stride, ... (layer dropping)")
    layers: tuple[int, ...] = setting((), minimum=0, help="explicit hidden-state indices (overrides layer_stride)")
    fusion: str = setting(
        "concat",
        help="how the three paths' outputs become one item vector: concat (IISAN's Linear), or any fusion (`mmbench "
        "list fusions`)",
        choices="fusions",
    )


class IISANItemEncoder(SideItemEncoder):
    """The three paths of IISAN — text and image intra-modal, and inter-modal — run side by side: block i of all
    three is one batched matmul pair (ParallelSANBs), and the three heads are two more (ParallelHeads).

    Path p's block i reads `tower_p[i] + carry_p[i] * s_p[i-1]`:
    text  g_t h_t + (1 - g_t) s_t;  image  g_v h_v + (1 - g_v) s_v;  inter  g_m h_v + (1 - g_m) h_t + u.
    """

    PATHS = ("text", "image", "inter")

    def __init__(self, plan: SidePlan, options: IISANOptions):
        super().__init__(plan)
        towers, layer_indices, embed_dim = plan.towers, plan.layer_indices, plan.embed_dim
        width, self.blocks = towers["text"].hidden_size, len(layer_indices["text"])
        paths = len(self.PATHS)
        self.side = ParallelSANBs(paths, self.blocks, width, options.bottleneck, options.activation, options.init)
        self.gate_logits = nn.Parameter(torch.zeros(paths, self.blocks))  # g = sigmoid(p / 0.1) = 0.5 at init
        self.heads = ParallelHeads(paths, width, embed_dim)
        self.fusion = build_fusion(options.fusion, [embed_dim] * paths, embed_dim)

    def side_forward(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        text, image = states["text"], states["image"]  # [n, blocks, width]
        gates = torch.sigmoid(self.gate_logits / GATE_TEMPERATURE)  # [paths, blocks]
        g = gates.unsqueeze(-1)
        # Every block's tower term at once ([paths, n, blocks, width]); the loop adds the carried side state.
        tower_terms = torch.stack([g[0] * text, g[1] * image, g[2] * image + (1 - g[2]) * text])
        carry = torch.stack([1 - gates[0], 1 - gates[1], torch.ones_like(gates[2])])[..., None, None]
        side = torch.zeros_like(tower_terms[:, :, 0])
        for tower_term, carried, weights in zip(
            tower_terms.unbind(2), carry.unbind(1), self.side.weights(), strict=True
        ):
            side = self.side.block(torch.addcmul(tower_term, carried, side), weights)
        parts = self.heads(side)  # [paths, n, embed_dim]
        fused: torch.Tensor = self.fusion(list(parts.unbind(0)))
        return fused


class _IISAN(SideNetworkMethod):
    Options = IISANOptions
    Encoder = IISANItemEncoder
    required_modalities = ("text", "image")
    allowed_modalities = ("text", "image")

    def layer_plan(self, towers: dict[str, Tower]) -> dict[str, list[int]]:
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
