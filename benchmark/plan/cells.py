"""The cells of a checked suite, with what each needs resolved once, here: whether its method trains from a
hidden-state cache (the launcher builds those first)."""

from __future__ import annotations

import dataclasses

from benchmark.methods.registry import get_method_class
from benchmark.suite.config import SuiteConfig
from benchmark.suite.matrix import Cell, expand_cells


def planned_cells(suite: SuiteConfig) -> list[Cell]:
    """The suite's cells (`expand_cells`' order), each knowing whether it uses a cache."""
    uses_cache = {method.name: get_method_class(method.name).uses_cache for method in suite.methods}
    return [dataclasses.replace(cell, uses_cache=uses_cache[cell.config.method.name]) for cell in expand_cells(suite)]
