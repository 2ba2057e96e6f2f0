"""The names every kind of extension is registered under, for the code below the registries that must check or
resolve a name: the suite's configuration types import no registry (they sit beneath them all), and the layers
above hand them these functions. One kind string per registry: `methods`, `presets`, `modalities`, `formats`,
`launchers`, `sequence_models`, `objectives`, `fusions`."""

from __future__ import annotations

from collections.abc import Callable

from benchmark.formats.registry import format_names
from benchmark.launch.launchers import launcher_names
from benchmark.methods.fusions.registry import fusion_names
from benchmark.methods.registry import method_names, method_options
from benchmark.modalities.registry import modality_names
from benchmark.models.presets_registry import preset_names
from benchmark.train.objectives.registry import get_objective, objective_names
from benchmark.train.sequence_models.registry import get_sequence_model, sequence_model_names

_NAMES: dict[str, Callable[[], list[str]]] = {
    "methods": method_names,
    "presets": preset_names,
    "modalities": modality_names,
    "formats": format_names,
    "launchers": launcher_names,
    "sequence_models": sequence_model_names,
    "objectives": objective_names,
    "fusions": fusion_names,
}
# The options dataclass of a registered extension that takes options, by kind.
_OPTIONS: dict[str, Callable[[str], type]] = {
    "methods": method_options,
    "sequence_models": lambda name: get_sequence_model(name).Options,
    "objectives": lambda name: get_objective(name).Options,
}


def names(kind: str) -> list[str]:
    """The registered names of one kind of extension, plug-ins included."""
    return _NAMES[kind]()


def options_of(kind: str, name: str) -> type:
    """The options dataclass of the extension `name` of `kind` (methods, sequence_models, objectives)."""
    return _OPTIONS[kind](name)


__all__ = ["method_options", "names", "options_of"]
