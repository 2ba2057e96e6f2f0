"""IISAN-Versa: IISAN for asymmetric towers (a deeper/wider text encoder or decoder LLM with a ViT).

- Group layer dropping per tower: each tower's layers split into groups, one kept state per
  group (plus the embedding output). `groups` (default: the shallower tower's layers / 2, which
  is IISAN's every-second layer) applies to the shallower tower; `deep_groups` (default: the
  same) to the deeper one.
- When the deeper tower keeps more states, its first (surplus) blocks run intra-modal only; the
  inter-modal SAN pairs the remaining ones with the shallower tower's blocks.
- Dimension alignment: a Linear per inter-modal block projects the wider tower's states to the
  narrower width before the inter-modal SAN.
- Heads: the narrower tower and the inter-modal SAN keep IISAN's Linear(w, w) + Linear(w, 64); a
  wider tower's head is Linear(w, 64) + Linear(64, 64), as in the reference code.
- Fusion: `concat` (IISAN's Linear(192, 64)), `momef` (mixture of experts, as in CROSSAN) or any other fusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.fusions.registry import build_fusion
from benchmark.methods.registry import register_method
from benchmark.methods.side_encoder import SideItemEncoder, SideNetworkMethod, SidePlan
from benchmark.methods.side_network import (
    FusedSideOptions,
    InterModalSAN,
    IntraModalSAN,
    group_indices,
    narrowing_head,
    projection_head,
)
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


@dataclass(frozen=True)
class VersaOptions(FusedSideOptions):
    groups: int = setting(0, minimum=0, help="layer groups of the shallower tower (0: its layers / 2)")
    deep_groups: int = setting(0, minimum=0, help="layer groups of the deeper tower (0: as many as groups)")


class VersaItemEncoder(SideItemEncoder):
    def __init__(self, plan: SidePlan, options: VersaOptions):
        super().__init__(plan)
        layer_indices, embed_dim, widths = plan.layer_indices, plan.embed_dim, plan.widths
        blocks = {modality: len(indices) for modality, indices in layer_indices.items()}
        self.narrow_width = min(widths.values())
        self.shared_blocks = min(blocks.values())
        # The deeper plan's first blocks have no partner in the other tower: intra-modal only.
        self.surplus = {modality: count - self.shared_blocks for modality, count in blocks.items()}
        self.intra = nn.ModuleDict(
            {
                m: IntraModalSAN(blocks[m], widths[m], options.bottleneck, options.activation, options.init)
                for m in ("text", "image")
            }
        )
        self.align = nn.ModuleDict(
            {
                m: nn.ModuleList(nn.Linear(widths[m], self.narrow_width) for _ in range(self.shared_blocks))
                for m in ("text", "image")
                if widths[m] != self.narrow_width
            }
        )
        self.inter_san = InterModalSAN(
            self.shared_blocks, self.narrow_width, options.bottleneck, options.activation, options.init
        )
        # A tower wider than its partner reduces to the embedding width first (the reference Versa head).
        self.heads = nn.ModuleDict(
            {
                m: projection_head(widths[m], embed_dim)
                if widths[m] == self.narrow_width
                else narrowing_head(widths[m], embed_dim)
                for m in ("text", "image")
            }
        )
        self.inter_head = projection_head(self.narrow_width, embed_dim)
        self.fusion = build_fusion(options.fusion, [embed_dim] * 3, embed_dim, options.expert_hidden)

    def aligned_states(self, states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The inter-modal SAN's inputs: the last `shared_blocks` states of each tower at the narrower width."""
        aligned = {}
        for modality in ("text", "image"):
            shared = states[modality][:, self.surplus[modality] :]
            if modality in self.align:
                projections = cast(nn.ModuleList, self.align[modality])
                shared = torch.stack([project(shared[:, i]) for i, project in enumerate(projections)], dim=1)
            aligned[modality] = shared
        return aligned

    def side_forward(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        aligned = self.aligned_states(states)
        parts = [
            self.heads["text"](self.intra["text"](states["text"])),
            self.heads["image"](self.intra["image"](states["image"])),
            self.inter_head(self.inter_san(aligned["image"], aligned["text"])),
        ]
        fused: torch.Tensor = self.fusion(parts)
        return fused


class _IISANVersa(SideNetworkMethod):
    Options = VersaOptions
    Encoder = VersaItemEncoder
    required_modalities = ("text", "image")
    allowed_modalities = ("text", "image")

    def layer_plan(self, towers: dict[str, Tower]) -> dict[str, list[int]]:
        text, image = towers["text"], towers["image"]
        shallow, deep = (text, image) if text.num_layers <= image.num_layers else (image, text)
        groups = self.options.groups or max(shallow.num_layers // 2, 1)
        deep_groups = self.options.deep_groups or groups
        if deep_groups < groups:
            raise TowerError(
                f"{deep.label}: deep_groups ({deep_groups}) must be at least groups ({groups}), "
                "the deeper tower keeps at least as many states as the shallower"
            )
        return {
            shallow.modality: group_indices(shallow.num_layers, groups, shallow.label),
            deep.modality: group_indices(deep.num_layers, deep_groups, deep.label),
        }


@register_method
class IISANVersa(_IISANVersa):
    name = "iisan_versa"
    description = (
        "IISAN-Versa, uncached: group layer dropping, intra-only surplus groups, "
        "dimension alignment (asymmetric towers)"
    )


@register_method
class IISANVersaCached(_IISANVersa):
    name = "iisan_versa_cached"
    description = "IISAN-Versa trained from the hidden-state cache; towers never on the device"
    uses_cache = True
