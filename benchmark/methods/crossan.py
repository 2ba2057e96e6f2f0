"""CROSSAN: cross-modal side adapters for M >= 2 frozen towers, fused by MOMEF.

The authors' code is unpublished; this is our reconstruction of the paper's description, with
its choices exposed as options:

- Every tower supplies `blocks` + 1 kept states by group layer dropping (default blocks: the
  shallowest tower's layers / 2), projected to a common side width (the narrowest tower's) by
  a Linear per block where a tower is wider.
- Block i of modality m reads its own tower's state plus a learned softmax mixture (logits
  initialised equal) of all modalities' block i-1 side outputs: x = h_m[i] + sum_m' a_{m,i,m'} s_{m',i-1}.
- Fusion `momef` (default): one expert FFN per modality over its last side output and a softmax
  router over M, conditioned on the concatenated modality outputs; or `concat`: one Linear.
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
from benchmark.methods.side_network import FusedSideOptions, ParallelSANBs, group_indices
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


@dataclass(frozen=True)
class CROSSANOptions(FusedSideOptions):
    fusion: str = setting(
        "momef",
        help="momef (mixture of modality experts, the paper's), or any fusion (`mmbench list fusions`)",
        choices="fusions",
    )
    blocks: int = setting(0, minimum=0, help="side blocks per modality (0: the shallowest tower's layers / 2)")


class CrossModalMixing(nn.Module):
    """Softmax mixture weights over modalities, one set per (block, receiving modality)."""

    def __init__(self, blocks: int, modalities: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(blocks, modalities, modalities))

    def forward(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)  # [blocks, receiving m, source m']


class CROSSANItemEncoder(SideItemEncoder):
    def __init__(self, plan: SidePlan, options: CROSSANOptions):
        super().__init__(plan)
        layer_indices, embed_dim, widths = plan.layer_indices, plan.embed_dim, plan.widths
        self.width = min(widths.values())
        self.blocks = len(next(iter(layer_indices.values())))
        self.align = nn.ModuleDict(
            {
                m: nn.ModuleList(nn.Linear(widths[m], self.width) for _ in range(self.blocks))
                for m in self.modalities
                if widths[m] != self.width
            }
        )
        # Block i of every modality runs as one batched matmul pair (same values as per-modality SANB modules).
        self.side = ParallelSANBs(
            len(self.modalities), self.blocks, self.width, options.bottleneck, options.activation, options.init
        )
        self.mixing = CrossModalMixing(self.blocks, len(self.modalities))
        self.fusion = build_fusion(
            options.fusion, [self.width] * len(self.modalities), embed_dim, options.expert_hidden
        )

    def side_outputs(self, states: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Each modality's last side state [n, width], in `self.modalities` order."""
        aligned = {}
        for m in self.modalities:
            if m in self.align:
                projections = cast(nn.ModuleList, self.align[m])
                aligned[m] = torch.stack([project(states[m][:, i]) for i, project in enumerate(projections)], dim=1)
            else:
                aligned[m] = states[m]
        tower_states = torch.stack([aligned[m] for m in self.modalities])  # [M, n, blocks, width]
        previous = torch.zeros_like(tower_states[:, :, 0])  # [M, n, width]
        for tower_state, mixing, weights in zip(
            tower_states.unbind(2), self.mixing().unbind(0), self.side.weights(), strict=True
        ):
            mixed = torch.einsum("ms,snw->mnw", mixing.to(previous.dtype), previous)
            previous = self.side.block(tower_state + mixed, weights)
        return list(previous.unbind(0))

    def side_forward(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        fused: torch.Tensor = self.fusion(self.side_outputs(states))
        return fused


class _CROSSAN(SideNetworkMethod):
    Options = CROSSANOptions
    Encoder = CROSSANItemEncoder
    min_modalities = 2

    def layer_plan(self, towers: dict[str, Tower]) -> dict[str, list[int]]:
        shallowest = min(tower.num_layers for tower in towers.values())
        blocks = self.options.blocks or max(shallowest // 2, 1)
        return {m: group_indices(t.num_layers, blocks, t.label) for m, t in towers.items()}

    def check_plan(self, plan: SidePlan) -> None:
        if len(plan.towers) < 2:
            raise TowerError(f"CROSSAN needs at least two towers, got {sorted(plan.towers)}")


@register_method
class CROSSAN(_CROSSAN):
    name = "crossan"
    description = (
        "CROSSAN (our reconstruction), uncached: cross-modal side adapters over M >= 2 frozen towers, MOMEF fusion"
    )


@register_method
class CROSSANCached(_CROSSAN):
    name = "crossan_cached"
    description = "CROSSAN trained from the hidden-state cache; towers never on the device"
    uses_cache = True
