"""The method registry: a method is one module in benchmark/methods that registers itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from benchmark.registry import Registry

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


@dataclass(frozen=True)
class NoOptions:
    """A method without hyper-parameters."""


class Method:
    """Turns frozen-or-trainable towers into the item encoder a cell trains.

    Subclasses set `name`, `Options` (a frozen dataclass; the suite validates against it),
    `required_modalities` and `uses_cache`, and implement `build_item_encoder`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # The method's hyper-parameters: a frozen dataclass whose fields (types, `Literal` choices, defaults,
    # minimums) the suite is validated against. A method without any keeps this empty one.
    Options: ClassVar[type] = NoOptions
    required_modalities: ClassVar[tuple[str, ...]] = ()
    allowed_modalities: ClassVar[tuple[str, ...] | None] = None  # None: any towers
    min_modalities: ClassVar[int] = 1
    uses_cache: ClassVar[bool] = False  # trains from a hidden-state cache instead of running towers
    # How one cell of the method may be spread over ranks (`train.distributed`): DDP replicates the model, FSDP
    # shards its weights, gradients and optimizer state.
    distributed_strategies: ClassVar[tuple[str, ...]] = ("ddp", "fsdp")

    def __init__(self, options: Any = None):
        """`options`: an instance of `Options`, or a mapping of some of its fields (tests, `mmbench list`)."""
        if options is None or isinstance(options, dict):
            options = self.Options(**(options or {}))
        self.options = options

    def build_item_encoder(self, towers: dict[str, Tower], embed_dim: int) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def distributed_strategy(cls, requested: str) -> str:
        """The strategy a distributed cell of this method runs under: the one asked for (`train.distributed`) where
        the method allows it, else its first (a side network under fsdp trains under ddp, and its row says so)."""
        return requested if requested in cls.distributed_strategies else cls.distributed_strategies[0]

    @classmethod
    def options_problems(cls, options: Any) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems with well-typed options that only the method can see, each at a key path under `options`
        (checked when a suite is validated); `options` is an instance of `Options`."""
        return []

    @classmethod
    def quantized_base_problem(cls, options: Any, base_precision: str) -> str | None:
        """Why this method cannot train on towers whose linear layers are quantized (`base_precision`), or None
        (checked when a suite is validated); `options` is an instance of `Options`."""
        return None

    @classmethod
    def tower_problem(cls, modality: str, preset_name: str) -> str | None:
        """Why this method cannot apply to a tower preset (checked when a suite is validated), or None."""
        return None


METHODS: Registry[type[Method]] = Registry("method", package="benchmark.methods")


def register_method(cls: type[Method]) -> type[Method]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    METHODS.register(cls.name, cls)
    return cls


def method_names() -> list[str]:
    return sorted(METHODS.names())


def get_method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def method_options(name: str) -> type:
    """The options dataclass of a registered method (what `CellConfig.from_dict` builds a cell's options with)."""
    options: type = get_method_class(name).Options
    return options
