"""What the commands do, as functions: `runs` plans a run of a suite and carries it out, `boards` ranks stored
rows. The command line parses, calls one of these and prints; a notebook or a script calls the same functions.
Diagnostics go to a `Notify` callable, data comes back as values.

For notebooks, `benchmark.api.run`, `rows`, `leaderboard` and `estimate` (`api/notebook.py`) return polars
DataFrames. They
are loaded when first used: the command line imports this package without them (and without torch).
"""

from __future__ import annotations

from typing import Any

_NOTEBOOK = ("run", "rows", "leaderboard", "estimate", "RunResult")


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK:
        from benchmark.api import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'benchmark.api' has no attribute '{name}'")
