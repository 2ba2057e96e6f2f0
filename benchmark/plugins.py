"""Extensions from outside the package: modules named in MMBENCH_PLUGINS (comma-separated, importable) are imported
once, before a registry is first read, so the methods and dataset formats they register are known everywhere —
in cell subprocesses too, which inherit the variable."""

from __future__ import annotations

import importlib
import os
import pkgutil

from benchmark.errors import MMBenchError

PLUGINS_VARIABLE = "MMBENCH_PLUGINS"
_loaded: set[str] = set()


def load_plugins() -> None:
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        if name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise MMBenchError(f"{PLUGINS_VARIABLE}: cannot import plugin module '{name}': {error}") from error
        _loaded.add(name)


_imported_packages: set[str] = set()


def discover(package_name: str, plugins: bool = True) -> None:
    """Import every module of a built-in extension package (each registers itself) once, and the plugins.

    Plugins are looked at on every call (idempotent and cheap), so a plugin named after a registry's
    first look-up still registers; `plugins=False` is for listings that must not import user code.
    """
    if plugins:
        load_plugins()
    if package_name in _imported_packages:
        return
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "registry":
            importlib.import_module(f"{package_name}.{module.name}")
    _imported_packages.add(package_name)
