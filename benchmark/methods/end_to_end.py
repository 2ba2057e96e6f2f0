"""The item encoder shared by methods that train through the towers (FFT, LoRA, Adapter, BitFit).

Each tower's pooled last-layer state (first token, or the mean over valid tokens for decoder
LLMs and VideoMAE) goes through a Linear to the embedding width; with several towers, their
concatenation is fused by one more Linear.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.fusions.registry import build_fusion
from benchmark.methods.registry import Method
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


class EndToEndItemEncoder(nn.Module):
    def __init__(self, towers: dict[str, Tower], embed_dim: int, fusion: str = "concat"):
        super().__init__()
        self.towers = nn.ModuleDict(towers)
        self.heads = nn.ModuleDict({name: nn.Linear(tower.hidden_size, embed_dim) for name, tower in towers.items()})
        # One tower: its head's output is the item vector, nothing to fuse.
        self.fusion = build_fusion(fusion, [embed_dim] * len(towers), embed_dim) if len(towers) > 1 else None

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [
            self.heads[name](cast("Tower", tower).pool(tower(features), features))
            for name, tower in self.towers.items()
        ]
        fused: torch.Tensor = self.fusion(parts) if self.fusion is not None else parts[0]
        return fused


@dataclass(frozen=True)
class EndToEndOptions:
    """What every method that trains through the towers can also do: trade recomputation for activation memory."""

    gradient_checkpointing: bool = setting(
        False, help="keep only each tower layer's input and recompute the layer in backward (less memory, more FLOPs)"
    )
    checkpoint_reentrant: bool = setting(
        False,
        help="with gradient_checkpointing: torch's reentrant checkpoint (the older kind) instead of non-reentrant",
    )
    fusion: str = setting(
        "concat",
        help="how the towers' vectors become one item vector (several towers): concat (one Linear), or any fusion "
        "(`mmbench list fusions`)",
        choices="fusions",
    )


def checkpointing_mode(options: object) -> str | None:
    """'non-reentrant', 'reentrant', or None (no gradient checkpointing): what a row records."""
    if not getattr(options, "gradient_checkpointing", False):
        return None
    return "reentrant" if getattr(options, "checkpoint_reentrant", False) else "non-reentrant"


def enable_checkpointing(tower: Tower, reentrant: bool) -> None:
    """transformers' gradient checkpointing of every layer of the tower (a peft-wrapped one too)."""
    model = tower.model
    if not getattr(model, "supports_gradient_checkpointing", True):
        raise TowerError(f"{tower.label}: {type(model).__name__} does not support gradient checkpointing")
    model.gradient_checkpointing_enable(  # type: ignore[operator]  # transformers' PreTrainedModel method
        gradient_checkpointing_kwargs={"use_reentrant": reentrant}
    )
    if reentrant:
        # A reentrant checkpoint passes gradients only to inputs that require them: with frozen embeddings (LoRA,
        # adapters) the layers' own trainable weights would get none without this.
        model.enable_input_require_grads()  # type: ignore[operator]


def wrap_with_peft(tower: Tower, config: Any) -> None:
    """Replace the tower's model by peft's wrapper for `config` (peft freezes the base weights and leaves them as
    they were). peft asks the model for `is_gradient_checkpointing`, which transformers 5 deprecates with a
    FutureWarning in every such cell's log; that is peft's call to change and nothing a user can act on, so it is
    silenced here and only here."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        tower.model = get_peft_model(tower.model, config)


class EndToEndMethod(Method):
    """Base for methods that adapt the towers in place and train through them."""

    Options = EndToEndOptions

    def adapt_tower(self, tower: Tower) -> None:
        raise NotImplementedError

    def build_item_encoder(self, towers: dict[str, Tower], embed_dim: int) -> nn.Module:
        mode = checkpointing_mode(self.options)
        for tower in towers.values():
            self.adapt_tower(tower)
            if mode is not None:
                enable_checkpointing(tower, reentrant=mode == "reentrant")
        return EndToEndItemEncoder(towers, embed_dim, getattr(self.options, "fusion", "concat"))


def freeze(module: nn.Module) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(False)
