"""One registry type for every kind of extension: a name -> entry map that refuses a name registered twice for
another entry, looks its plug-ins up first, and answers an unknown name with the closest known one.

Methods, dataset formats, modalities, tower presets, launchers and report writers use it.
"""

from __future__ import annotations

import difflib
import operator
import sys
from collections.abc import Callable
from typing import Generic, TypeVar

from benchmark.errors import UnknownNameError
from benchmark.plugins import BUILT_IN, current_origin, discover, load_plugins

Entry = TypeVar("Entry")


def closest_hint(name: str, known: list[str]) -> str:
    """ "did you mean 'x'? " for the known name closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _origin_of_registration() -> str:
    """Built in when the module whose top-level code is registering belongs to mmbench (even when a plug-in's import
    caused that module's first import); otherwise where the plug-in loader says it is importing from."""
    origin = current_origin()
    if origin == BUILT_IN:
        return origin
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back  # type: ignore[assignment]  # the outermost frame's f_back is None
    module = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
    return BUILT_IN if module == "benchmark" or module.startswith("benchmark.") else origin


class Registry(Generic[Entry]):
    def __init__(
        self, kind: str, package: str | None = None, same: Callable[[Entry, Entry], bool] = operator.eq
    ) -> None:
        """`kind` names an entry in messages ("launcher"); `package`, when given, is a package whose modules
        each register built-in entries when imported (the others live beside the registry). `same` tells a
        module registering its entry again (imported twice) from another entry taking the name."""
        self.kind = kind
        self.package = package
        self._same = same
        self._entries: dict[str, Entry] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str, entry: Entry) -> Entry:
        if not name:
            raise ValueError(f"a {self.kind} needs a name")
        if name in self._entries and not self._same(self._entries[name], entry):
            raise ValueError(f"{self.kind} name '{name}' registered twice")
        self._entries[name] = entry
        self._origins.setdefault(name, _origin_of_registration())
        return entry

    def origin(self, name: str) -> str:
        """Where `name` was registered from: built in, an installed package's entry point, MMBENCH_PLUGINS."""
        self._load()
        return self._origins.get(name, BUILT_IN)

    def _load(self, plugins: bool = True) -> None:
        if self.package is not None:
            discover(self.package, plugins)
        elif plugins:
            load_plugins()

    def names(self, plugins: bool = True) -> list[str]:
        """Every registered name, built-ins first, in registration order."""
        self._load(plugins)
        return list(self._entries)

    def registered(self) -> list[Entry]:
        """The entries registered so far, without importing anything (for checks made while registering)."""
        return list(self._entries.values())

    def entries(self, plugins: bool = True) -> list[Entry]:
        """Every registered entry, in registration order."""
        self._load(plugins)
        return list(self._entries.values())

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            known = list(self._entries)
            raise UnknownNameError(
                f"unknown {self.kind} '{name}' ({closest_hint(name, known)}known: {', '.join(known)})"
            )
        return self._entries[name]
