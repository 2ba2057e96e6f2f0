"""Side-network blocks shared by the decoupled methods (IISAN, IISAN-Versa, CROSSAN).

The frozen towers only supply hidden states; everything trainable lives here, so no gradient
ever flows through a tower.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.methods.adapter import ACTIVATIONS

GATE_TEMPERATURE = 0.1


def every_nth_layer(num_layers: int, stride: int) -> list[int]:
    """Hidden-state indices kept by layer dropping: 0 (embeddings), stride, 2*stride, ... up to num_layers."""
    return list(range(0, num_layers + 1, stride))


class SANB(nn.Module):
    """Side adapter network block: x + up(act(down(x)))."""

    def __init__(self, width: int, bottleneck: int, activation: str = "gelu"):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.activation = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.activation(self.down(hidden)))


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


def projection_head(width: int, embed_dim: int) -> nn.Sequential:
    """Linear(width, width) then Linear(width, embed_dim), as in IISAN's heads."""
    return nn.Sequential(nn.Linear(width, width), nn.Linear(width, embed_dim))


@torch.no_grad()
def kept_states(tower: nn.Module, features: dict[str, torch.Tensor], layer_indices: list[int]) -> torch.Tensor:
    """Pooled states (first token, or mean over valid tokens) of the kept hidden-state indices: [n, len(layer_indices), hidden].

    Runs without an autograd graph: the towers are frozen and nothing is saved for backward.
    """
    hidden_states = tower(features, all_layers=True)
    return torch.stack([tower.pool(hidden_states[index], features) for index in layer_indices], dim=1).float()
