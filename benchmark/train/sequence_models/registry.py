"""The sequence-model registry: a user encoder is one module in benchmark/train/sequence_models that registers
itself.

A sequence model reads the item embeddings of left-padded histories [B, L, d] and their validity mask [B, L] and
returns one state per position [B, L, d]; the state at a position predicts the next item (causal models), and the
last position's is the user's (what evaluation scores every item against). Its hyper-parameters are its `Options`
dataclass, set in a suite as `train.sequence_options: {<name>: {...}}`; the width, depth, heads, dropout and
length every model shares are the suite's `train.embed_dim`, `user_layers`, `user_heads`, `dropout` and
`max_seq_len`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from benchmark.registry import Registry

if TYPE_CHECKING:
    from benchmark.suite.config import TrainConfig


@dataclass(frozen=True)
class NoOptions:
    """A sequence model without hyper-parameters of its own."""


class SequenceModel:
    """Builds a user encoder. Subclasses set `name`, `description`, `Options` and implement `build`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    @classmethod
    def build(cls, train: TrainConfig, options: Any) -> nn.Module:
        """The encoder for a cell's training settings; `options` is an instance of `Options`."""
        raise NotImplementedError


SEQUENCE_MODELS: Registry[type[SequenceModel]] = Registry("sequence model", package="benchmark.train.sequence_models")


def register_sequence_model(cls: type[SequenceModel]) -> type[SequenceModel]:
    SEQUENCE_MODELS.register(cls.name, cls)
    return cls


def sequence_model_names() -> list[str]:
    return SEQUENCE_MODELS.names()


def get_sequence_model(name: str) -> type[SequenceModel]:
    return SEQUENCE_MODELS.get(name)
