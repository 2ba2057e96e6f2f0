"""Side-network blocks shared by the decoupled methods (IISAN, IISAN-Versa, CROSSAN).

The frozen towers only supply hidden states; everything trainable lives here, so no gradient
ever flows through a tower.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.blocks import Activation, Bottleneck
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower

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


SideInit = Literal["default", "reference"]


@dataclass(frozen=True)
class SideAdapterOptions:
    """The options every side network's adapters share (IISAN, IISAN-Versa, CROSSAN)."""

    bottleneck: int = setting(64, minimum=1, help="side adapter width (768 -> 64 -> 768)")
    activation: Activation = setting("gelu", help="side adapter activation (the IISAN code: relu)")
    init: SideInit = setting(
        "default",
        help="side adapter initialisation: default (PyTorch's Linear init) or reference (the IISAN code's: weights "
        "N(0, 0.01), biases 0)",
    )


@dataclass(frozen=True)
class FusedSideOptions(SideAdapterOptions):
    """Side networks that fuse their modality outputs either way (IISAN-Versa, CROSSAN)."""

    fusion: str = setting(
        "concat",
        help="how the paths' outputs become one item vector: concat (IISAN's Linear), momef (mixture of modality "
        "experts), sum, gated, film, mlp, co_attention, merged_attention (`mmbench list fusions`)",
        choices="fusions",
    )
    expert_hidden: int = setting(256, minimum=1, help="MOMEF expert width (and the mlp fusion's hidden width)")


# The IISAN code's adapter blocks start from N(0, 0.01) weights and zero biases.
REFERENCE_INIT_STD = 0.01


def reference_init(module: nn.Module) -> None:
    """The IISAN code's adapter-block initialisation: every Linear's weight N(0, 0.01), its bias 0."""
    for linear in module.modules():
        if isinstance(linear, nn.Linear):
            nn.init.normal_(linear.weight, std=REFERENCE_INIT_STD)
            nn.init.zeros_(linear.bias)


def compute_precision(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in the precision autocast computes in (itself outside autocast): cast once per forward, where
    autocast would cast a slice of it for every block that reads one."""
    device = tensor.device.type
    if torch.is_autocast_enabled(device):
        return tensor.to(torch.get_autocast_dtype(device))
    return tensor


class ParallelSANBs(nn.Module):
    """`paths` side adapter blocks at each of `blocks` depths, run together: block i of every path is one pair of
    batched matmuls over [paths, n, width] instead of `paths` pairs of small ones (fewer, larger kernels, one
    parameter tensor per kind instead of four per block).

    The math and the initial values are those of `paths` x `blocks` SANB modules built path after path — the random
    draws happen in that order — so a side network keeps its results when it moves to this layout.
    """

    def __init__(
        self, paths: int, blocks: int, width: int, bottleneck: int, activation: Activation, init: str = "default"
    ):
        super().__init__()
        built = [[SANB(width, bottleneck, activation) for _ in range(blocks)] for _ in range(paths)]
        if init == "reference":
            reference_init(nn.ModuleList(block for path in built for block in path))

        def stacked(take: typing.Callable[[Bottleneck], torch.Tensor]) -> nn.Parameter:
            return nn.Parameter(
                torch.stack([torch.stack([take(built[p][b]) for p in range(paths)]) for b in range(blocks)]).detach()
            )

        # [blocks, paths, in, out] weights (x @ W), [blocks, paths, 1, out] biases
        self.down_weight = stacked(lambda block: block.down.weight.t())
        self.down_bias = stacked(lambda block: block.down.bias.unsqueeze(0))
        self.up_weight = stacked(lambda block: block.up.weight.t())
        self.up_bias = stacked(lambda block: block.up.bias.unsqueeze(0))
        self.activation = built[0][0].activation

    def weights(self) -> list[tuple[torch.Tensor, ...]]:
        """Per block, its (down weight, down bias, up weight, up bias) in the compute precision, for one forward.

        Unbound once: the backward of one unbind is one stack, where indexing block by block would give every block's
        gradient its own full-size zero tensor to be summed."""
        unbound = [
            compute_precision(p).unbind(0) for p in (self.down_weight, self.down_bias, self.up_weight, self.up_bias)
        ]
        return list(zip(*unbound, strict=True))

    def block(self, hidden: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One block of every path: hidden [paths, n, width] -> hidden + up(act(down(hidden)))."""
        down_weight, down_bias, up_weight, up_bias = weights
        down = self.activation(torch.baddbmm(down_bias, hidden, down_weight))
        return hidden + torch.baddbmm(up_bias, down, up_weight)


class ParallelHeads(nn.Module):
    """`paths` projection heads Linear(width, width) -> Linear(width, embed_dim) run as two batched matmuls; initial
    values as `paths` projection_head modules built one after the other."""

    def __init__(self, paths: int, width: int, embed_dim: int):
        super().__init__()
        built = [projection_head(width, embed_dim) for _ in range(paths)]
        # A projection head is two Linear layers (Sequential indexing is typed as any Module).
        firsts = [cast(nn.Linear, head[0]) for head in built]
        seconds = [cast(nn.Linear, head[1]) for head in built]
        self.first_weight = nn.Parameter(torch.stack([first.weight.t() for first in firsts]).detach())
        self.first_bias = nn.Parameter(torch.stack([first.bias.unsqueeze(0) for first in firsts]).detach())
        self.second_weight = nn.Parameter(torch.stack([second.weight.t() for second in seconds]).detach())
        self.second_bias = nn.Parameter(torch.stack([second.bias.unsqueeze(0) for second in seconds]).detach())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[paths, n, width] -> [paths, n, embed_dim]."""
        first = torch.baddbmm(compute_precision(self.first_bias), hidden, compute_precision(self.first_weight))
        return torch.baddbmm(compute_precision(self.second_bias), first, compute_precision(self.second_weight))


class LearnedGates(nn.Module):
    """g_i = sigmoid(p_i / 0.1), p_i initialised at 0 (g = 0.5)."""

    def __init__(self, count: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(count))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits / GATE_TEMPERATURE)


class GatedSANStack(nn.Module):
    """`blocks` SANBs in a row and one learned gate per block: what the intra- and inter-modal networks share."""

    def __init__(self, blocks: int, width: int, bottleneck: int, activation: Activation, init: str = "default"):
        super().__init__()
        self.blocks = nn.ModuleList(SANB(width, bottleneck, activation) for _ in range(blocks))
        if init == "reference":
            reference_init(self.blocks)
        self.gates = LearnedGates(blocks)


class IntraModalSAN(GatedSANStack):
    """Block i reads g_i * h[idx_i] + (1 - g_i) * s_{i-1}, with s_0 = 0."""

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """states [n, blocks, width] -> the last block's output [n, width]."""
        gates = self.gates()
        side = torch.zeros_like(states[:, 0])
        for index, block in enumerate(self.blocks):
            side = block(gates[index] * states[:, index] + (1 - gates[index]) * side)
        return side


class InterModalSAN(GatedSANStack):
    """u_i = SANB(u_{i-1} + g'_i * h_a[idx_i] + (1 - g'_i) * h_b[idx_i]), u_0 = 0 (a = image, b = text in IISAN)."""

    def forward(self, states_a: torch.Tensor, states_b: torch.Tensor) -> torch.Tensor:
        gates = self.gates()
        side = torch.zeros_like(states_a[:, 0])
        for index, block in enumerate(self.blocks):
            side = block(side + gates[index] * states_a[:, index] + (1 - gates[index]) * states_b[:, index])
        return side


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
def kept_states(tower: Tower, features: dict[str, torch.Tensor], layer_indices: list[int]) -> torch.Tensor:
    """Pooled states (first token, or mean over valid tokens) of the kept hidden-state indices: [n, len(layer_indices),
    hidden].

    Runs without an autograd graph: the towers are frozen and nothing is saved for backward.
    """
    hidden_states = tower(features, all_layers=True)
    return torch.stack([tower.pool(hidden_states[index], features) for index in layer_indices], dim=1).float()
