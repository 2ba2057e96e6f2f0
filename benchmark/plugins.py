"""Extensions from outside the package: modules named in MMBENCH_PLUGINS (comma-separated, importable) are imported
once, before a registry is first read, so the methods and dataset formats they register are known everywhere —
in cell subprocesses too, which inherit the variable."""

from __future__ import annotations

import importlib
import os

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
