"""Extensions from outside the package, found two ways, once, before a registry is first read (and in every cell
subprocess, which finds them the same way):

- installed packages that declare entry points in the groups `mmbench.methods`, `mmbench.formats`,
  `mmbench.modalities`, `mmbench.presets`, `mmbench.launchers`, `mmbench.reports`, `mmbench.sequence_models`,
  `mmbench.objectives`, `mmbench.fusions` (each entry point names a module,
  which registers its extensions when imported: `[project.entry-points."mmbench.methods"] top_layers = "pkg.mod"`);
- modules named in MMBENCH_PLUGINS (comma-separated, importable), for code that is not installed.

Every registration remembers where it came from (`origin`): `mmbench list` shows it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
import pkgutil
from collections.abc import Iterator
from importlib import metadata

from benchmark.errors import MMBenchError

PLUGINS_VARIABLE = "MMBENCH_PLUGINS"
ENTRY_POINT_GROUPS = tuple(
    f"mmbench.{kind}"
    for kind in (
        "methods",
        "formats",
        "modalities",
        "presets",
        "launchers",
        "reports",
        "sequence_models",
        "objectives",
        "fusions",
    )
)
BUILT_IN = "built in"
_loaded: set[str] = set()
_origin: contextvars.ContextVar[str] = contextvars.ContextVar("mmbench_origin", default="registered in this process")


def current_origin() -> str:
    """Where the extension being registered now comes from."""
    return _origin.get()


@contextlib.contextmanager
def registering_from(origin: str) -> Iterator[None]:
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


def _import(module: str, origin: str, what: str) -> None:
    try:
        with registering_from(origin):
            importlib.import_module(module)
    except ImportError as error:
        raise MMBenchError(f"{what}: cannot import plugin module '{module}': {error}") from error


@functools.cache
def _entry_points() -> tuple[tuple[metadata.EntryPoint, str], ...]:
    """Every installed plug-in's entry points, with where each comes from. Read once a process: listing the installed
    distributions costs milliseconds, and registries are read thousands of times (a package installed while a
    process runs is found by the next one)."""
    found = []
    for group in ENTRY_POINT_GROUPS:
        for entry_point in metadata.entry_points(group=group):
            distribution = entry_point.dist
            package = f"{distribution.name} {distribution.version}" if distribution is not None else "a package"
            found.append((entry_point, f"{package} (entry point {group}: {entry_point.name})"))
    return tuple(found)


def load_plugins() -> None:
    for entry_point, origin in _entry_points():
        key = f"entry point {entry_point.group}={entry_point.value}"
        if key not in _loaded:
            _import(entry_point.module, origin, origin)
            _loaded.add(key)
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        if name not in _loaded:
            _import(name, f"{PLUGINS_VARIABLE} module {name}", PLUGINS_VARIABLE)
            _loaded.add(name)


_imported_packages: set[str] = set()


def discover(package_name: str, plugins: bool = True) -> None:
    """Import every module of a built-in extension package (each registers itself) once, and the plugins.

    Plugins are looked at on every call (idempotent and cheap), so a plugin named after a registry's
    first look-up still registers; `plugins=False` is for listings that must not import user code.
    """
    if package_name not in _imported_packages:
        package = importlib.import_module(package_name)
        with registering_from(BUILT_IN):
            for module in pkgutil.iter_modules(package.__path__):
                if module.name != "registry":
                    importlib.import_module(f"{package_name}.{module.name}")
        _imported_packages.add(package_name)
    if plugins:
        load_plugins()
