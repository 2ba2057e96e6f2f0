"""The fusion registry: a fusion is one module in benchmark/methods/fusions that registers itself.

A fusion is built for the widths of the parts it fuses (one vector per modality, or per side-network path) and the
item embedding width, and maps `parts: list[Tensor [n, width_i]]` to `[n, embed_dim]`. Methods that build one
item vector from several parts take it as their `fusion` option: every end-to-end method, IISAN, IISAN-Versa and
CROSSAN. Definitions follow MMSR's study of multimodal sequential recommenders where it gives them (each fusion's
module says what it chose where it does not).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from benchmark.registry import Registry

# (widths of the parts, embed_dim, hidden width of the fusions that have a hidden layer) -> the fusion module
FusionBuilder = Callable[[list[int], int, int], nn.Module]

FUSIONS: Registry[FusionBuilder] = Registry("fusion", package="benchmark.methods.fusions")
DESCRIPTIONS: dict[str, str] = {}
DEFAULT_HIDDEN = 256


def register_fusion(name: str, description: str) -> Callable[[FusionBuilder], FusionBuilder]:
    def register(builder: FusionBuilder) -> FusionBuilder:
        DESCRIPTIONS[name] = description
        return FUSIONS.register(name, builder)

    return register


def fusion_names() -> list[str]:
    return FUSIONS.names()


def build_fusion(kind: str, widths: list[int], embed_dim: int, hidden: int = DEFAULT_HIDDEN) -> nn.Module:
    return FUSIONS.get(kind)(widths, embed_dim, hidden)
