"""The names every kind of extension is registered under, for the code below the registries that must check or
resolve a name: the suite's configuration types import no registry (they sit beneath them all), and the layers
above hand them these functions. One kind string per registry: `methods`, `presets`, `modalities`, `formats`,
`launchers`."""

from __future__ import annotations

from collections.abc import Callable

from benchmark.formats.registry import format_names
from benchmark.launch.launchers import launcher_names
from benchmark.methods.registry import method_names, method_options
from benchmark.modalities.registry import modality_names
from benchmark.models.presets_registry import preset_names

_NAMES: dict[str, Callable[[], list[str]]] = {
    "methods": method_names,
    "presets": preset_names,
    "modalities": modality_names,
    "formats": format_names,
    "launchers": launcher_names,
}


def names(kind: str) -> list[str]:
    """The registered names of one kind of extension, plug-ins included."""
    return _NAMES[kind]()


__all__ = ["method_options", "names"]
