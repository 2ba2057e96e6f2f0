"""The objective registry: a training objective is one module in benchmark/train/objectives that registers itself.

An objective turns a step's user states and the item vectors the step encoded into a loss. What it is handed
(`StepScores`) holds only tensors, so that no objective needs the host to look at the device's data: no boolean
indexing, no `.item()`, nothing sized from values (a synchronisation inside every step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from benchmark.registry import Registry

# Label of a position that predicts nothing (padding): it adds no term to any loss.
IGNORED = -100


@dataclass(frozen=True)
class StepScores:
    """One step's predictions and targets.

    users [B, L, d]: the sequence model's state at each history position; candidates [U, d]: the vectors of the
    items the step encoded (`encoded_ids` [U]; 0 is a padding slot, never a candidate); labels [B, L]: the column
    of each position's next item in `candidates`, IGNORED where it predicts nothing; sequences [B, L+1]: the item
    ids of each history and its target (own-history masking); log_item_probability [n_items + 1] or None: logQ
    correction of sampled negatives; history [B, L, d] or None: the item vectors of the history positions (zero at
    padding), for objectives that compare an interaction's item with what came before it."""

    users: torch.Tensor
    candidates: torch.Tensor
    labels: torch.Tensor
    encoded_ids: torch.Tensor
    sequences: torch.Tensor
    log_item_probability: torch.Tensor | None
    history: torch.Tensor | None = None
    # [B, L]: the positions that predict an item (labels != IGNORED), when the caller has it already: one kernel
    # fewer a step than computing it again.
    known_predicting: torch.Tensor | None = None

    @property
    def predicting(self) -> torch.Tensor:
        """[B, L]: the positions that predict an item."""
        return self.known_predicting if self.known_predicting is not None else self.labels != IGNORED

    def excluded_candidates(self) -> torch.Tensor:
        """[B, U]: the candidates that are no negative for a user: padding slots, and the items of the user's own
        sequence (its target's column is told apart by the label)."""
        in_history = (self.encoded_ids.view(1, 1, -1) == self.sequences.unsqueeze(-1)).any(dim=1)
        return in_history | (self.encoded_ids == 0).unsqueeze(0)


@dataclass(frozen=True)
class NoOptions:
    """An objective without hyper-parameters of its own."""


class Objective:
    """Subclasses set `name`, `description`, `Options` and implement `loss`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None):
        """`options`: an instance of `Options`, or a mapping of some of its fields."""
        self.options: Any = self.Options(**(options or {})) if options is None or isinstance(options, dict) else options

    def loss(self, scores: StepScores) -> torch.Tensor:
        raise NotImplementedError


OBJECTIVES: Registry[type[Objective]] = Registry("objective", package="benchmark.train.objectives")


def register_objective(cls: type[Objective]) -> type[Objective]:
    OBJECTIVES.register(cls.name, cls)
    return cls


def objective_names() -> list[str]:
    return OBJECTIVES.names()


def get_objective(name: str) -> type[Objective]:
    return OBJECTIVES.get(name)
