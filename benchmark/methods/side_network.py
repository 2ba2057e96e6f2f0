"""Side-network blocks shared by the decoupled methods (IISAN, IISAN-Versa, CROSSAN).

The frozen towers only supply hidden states; everything trainable lives here, so no gradient
ever flows through a tower.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.blocks import Bottleneck

GATE_TEMPERATURE = 0.1


def every_nth_layer(num_layers: int, stride: int) -> list[int]:
    """Hidden-state indices kept by layer dropping: 0 (embeddings), stride, 2*stride, ... up to num_layers."""
    return list(range(0, num_layers + 1, stride))


def group_indices(num_layers: int, groups: int, tower_label: str) -> list[int]:
    """Group layer dropping: the embedding output and the last layer of each of `groups` near-equal groups.

    12 layers in 6 groups keep 0, 2, ..., 12 (IISAN's choice); 16 layers in 6 groups keep 0, 3, 5, 8, 11, 13, 16.
    """
    if not 1 <= groups <= num_layers:
        raise TowerError(
            f"{tower_label}: cannot split {num_layers} layers into {groups} groups (need 1 to {num_layers})"
        )
    return [0] + [round(num_layers * group / groups) for group in range(1, groups + 1)]


# Side adapter network block: x + up(act(down(x))), default initialisation.
SANB = Bottleneck


class LearnedGates(nn.Module):
    """g_i = sigmoid(p_i / 0.1), p_i initialised at 0 (g = 0.5)."""

    def __init__(self, count: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(count))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits / GATE_TEMPERATURE)


class IntraModalSAN(nn.Module):
    """Block i reads g_i * h[idx_i] + (1 - g_i) * s_{i-1}, with s_0 = 0."""

    def __init__(self, blocks: int, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.blocks = nn.ModuleList(SANB(width, bottleneck, activation) for _ in range(blocks))
        self.gates = LearnedGates(blocks)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """states [n, blocks, width] -> the last block's output [n, width]."""
        gates = self.gates()
        side = torch.zeros_like(states[:, 0])
        for index, block in enumerate(self.blocks):
            side = block(gates[index] * states[:, index] + (1 - gates[index]) * side)
        return side


class InterModalSAN(nn.Module):
    """u_i = SANB(u_{i-1} + g'_i * h_a[idx_i] + (1 - g'_i) * h_b[idx_i]), u_0 = 0 (a = image, b = text in IISAN)."""

    def __init__(self, blocks: int, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.blocks = nn.ModuleList(SANB(width, bottleneck, activation) for _ in range(blocks))
        self.gates = LearnedGates(blocks)

    def forward(self, states_a: torch.Tensor, states_b: torch.Tensor) -> torch.Tensor:
        gates = self.gates()
        side = torch.zeros_like(states_a[:, 0])
        for index, block in enumerate(self.blocks):
            side = block(side + gates[index] * states_a[:, index] + (1 - gates[index]) * states_b[:, index])
        return side


class MOMEF(nn.Module):
    """Mixture of modality experts: one expert FFN per input, a softmax router over the concatenated inputs."""

    def __init__(self, widths: list[int], embed_dim: int, expert_hidden: int):
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(width, expert_hidden), nn.GELU(), nn.Linear(expert_hidden, embed_dim))
            for width in widths
        )
        self.router = nn.Linear(sum(widths), len(widths))

    def route(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Router weights [n, experts]; each row sums to one."""
        return torch.softmax(self.router(torch.cat(parts, dim=-1)), dim=-1)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        weights = self.route(parts)
        outputs = torch.stack([expert(part) for expert, part in zip(self.experts, parts)], dim=1)  # [n, experts, d]
        return (weights.unsqueeze(-1) * outputs).sum(dim=1)


class ConcatFusion(nn.Module):
    """IISAN's fusion: one Linear over the concatenated parts."""

    def __init__(self, widths: list[int], embed_dim: int):
        super().__init__()
        self.linear = nn.Linear(sum(widths), embed_dim)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return self.linear(torch.cat(parts, dim=-1))


Fusion = Literal["concat", "momef"]
FUSIONS: tuple[str, ...] = typing.get_args(Fusion)


def build_fusion(kind: str, widths: list[int], embed_dim: int, expert_hidden: int) -> nn.Module:
    if kind == "concat":
        return ConcatFusion(widths, embed_dim)
    if kind == "momef":
        return MOMEF(widths, embed_dim, expert_hidden)
    raise ValueError(f"fusion must be one of {FUSIONS}, got '{kind}'")


def projection_head(width: int, embed_dim: int) -> nn.Sequential:
    """Linear(width, width) then Linear(width, embed_dim), as in IISAN's heads."""
    return nn.Sequential(nn.Linear(width, width), nn.Linear(width, embed_dim))


def narrowing_head(width: int, embed_dim: int) -> nn.Sequential:
    """Linear(width, embed_dim) then Linear(embed_dim, embed_dim): IISAN-Versa's head for a tower wider than its
    partner.

    Reducing first keeps the head small for wide LLM towers (Linear(w, w) would add w^2 parameters: 16.8 M at 4096).
    """
    return nn.Sequential(nn.Linear(width, embed_dim), nn.Linear(embed_dim, embed_dim))


@torch.no_grad()
def kept_states(tower: nn.Module, features: dict[str, torch.Tensor], layer_indices: list[int]) -> torch.Tensor:
    """Pooled states (first token, or mean over valid tokens) of the kept hidden-state indices: [n, len(layer_indices),
    hidden].

    Runs without an autograd graph: the towers are frozen and nothing is saved for backward.
    """
    hidden_states = tower(features, all_layers=True)
    return torch.stack([tower.pool(hidden_states[index], features) for index in layer_indices], dim=1).float()
