"""The modality registry: a modality is one module in benchmark/modalities that registers itself.

A modality says which item features its towers read (and how to load them from a dataset), how
those features become the transformers model's inputs, what input shape a hidden-state cache of
its towers keys on, and how random tower weights are seeded. Suites name towers by modality
(`towers: [{name, text: ..., image: ...}]`), and every other place (feature building, caches,
validation, the side networks' cached states) asks this registry. Modalities from outside the
package register the same way from a module named in MMBENCH_PLUGINS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from benchmark.modalities.media import array_problems
from benchmark.registry import Registry

if TYPE_CHECKING:
    import torch

    from benchmark.data.problems import DatasetProblem
    from benchmark.data.raw import RawDataset
    from benchmark.models.towers import Tower
    from benchmark.suite.config import TowerConfig


class Modality:
    """Base of every modality; subclasses set the class attributes and implement the three methods."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    # The ItemFeatures tensors this modality's towers read (each [n_items + 1, ...], row 0 padding).
    feature_keys: ClassVar[tuple[str, ...]]
    # Random tower weights are seeded with seed * 16 + offset: towers of different modalities differ,
    # and a tower's weights do not depend on which other towers a cell builds. Unique per modality.
    seed_offset: ClassVar[int]
    # Towers that take `image_size` (pixels or frames): the suite's image_size reaches their config.
    takes_image_size: ClassVar[bool] = False
    # Its towers read one file per item, `<item_folder>/<item_id><item_suffix>` in the dataset's directory (a format
    # may name another folder); None: nothing read from files. The default suffix is a .npy array per item.
    item_folder: ClassVar[str | None] = None
    item_suffix: ClassVar[str] = ".npy"
    # A file beside the dataset that may hold every item's file instead of the folder (an LMDB keyed by item id).
    item_store: ClassVar[str | None] = None
    # Its pooling mask marks tokens (text): a row's tokens_per_s counts them.
    counts_tokens: ClassVar[bool] = False

    def features(self, raw: RawDataset, tower: Tower, tower_config: TowerConfig) -> dict[str, torch.Tensor]:
        """The feature tensors of every item (row 0: padding), keyed by `feature_keys`."""
        raise NotImplementedError

    def model_inputs(self, tower: Tower, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A batch's features as keyword arguments of the tower's transformers model, on the features' device."""
        raise NotImplementedError

    def input_shape(self, tower: Tower, tower_config: TowerConfig) -> str:
        """What the tower's input looks like, for a hidden-state cache key (a different shape is a different cache)."""
        raise NotImplementedError

    def media_problems(self, raw: RawDataset, decode: bool) -> list[DatasetProblem]:
        """One problem per item whose file this modality reads is missing (with `decode`: unreadable). The default
        checks `.npy` arrays; a modality whose files are something else overrides this."""
        if self.item_folder is None:
            return []
        return array_problems(raw, self.name, decode)

    def sequence_length(self, tower_entry: dict[str, Any], model_config: dict[str, Any]) -> int:
        """How many positions a tower of this modality runs per item, from the suite's tower entry and the
        architecture (what `validate` sizes a step's memory with); one unless the modality knows better."""
        return 1

    @property
    def item_files(self) -> bool:
        """Whether its towers read one file per item (what `validate` checks is there)."""
        return self.item_folder is not None

    def pooling_mask(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Which tokens mean pooling averages over ([n, tokens] of 0/1); None: all of them."""
        return None


def states_key(modality: str) -> str:
    """The ItemFeatures key of a cached tower's kept hidden states (what cached side networks train from)."""
    return f"{modality}_states"


# A module imported twice registers its class again: the same modality if it has the same qualified name.
MODALITIES: Registry[Modality] = Registry(
    "modality", package="benchmark.modalities", same=lambda a, b: type(a).__qualname__ == type(b).__qualname__
)


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: register one instance of the modality under `cls.name`."""
    clash = [m.name for m in MODALITIES.registered() if m.seed_offset == cls.seed_offset and m.name != cls.name]
    if clash:
        raise ValueError(f"modality '{cls.name}': seed_offset {cls.seed_offset} is already '{clash[0]}''s")
    MODALITIES.register(cls.name, cls())
    return cls


def modality_names() -> list[str]:
    """Every modality, by seed offset: the order of towers in a cell (and of their fused embedding),
    the same whichever module registered first."""
    return [modality.name for modality in sorted(MODALITIES.entries(), key=lambda m: m.seed_offset)]


def get_modality(name: str) -> Modality:
    return MODALITIES.get(name)


def file_modalities() -> list[Modality]:
    """Modalities a dataset stores as one file per item, in a folder of their own (or a store beside it)."""
    return [modality for modality in map(get_modality, modality_names()) if modality.item_folder is not None]


def describe(modality: Modality) -> dict[str, Any]:
    return {"name": modality.name, "features": list(modality.feature_keys), "description": modality.description}
