"""Resolve, per architecture, which modules a method attaches to; a clear error names the tower otherwise."""

from __future__ import annotations

import re

from torch import nn

from benchmark.errors import TowerError

# (query, value) projection names by architecture / transformers version.
QUERY_VALUE_NAMES = [("query", "value"), ("q_proj", "v_proj"), ("q", "v"), ("q_lin", "v_lin")]

# Attention output projection and FFN output projection, as full-name patterns.
ATTENTION_OUTPUT_PATTERNS = [
    r"attention\.output\.dense$",
    r"attention\.o_proj$",
    r"attention\.out_proj$",
    r"self_attn\.o_proj$",
]
FFN_OUTPUT_PATTERNS = [r"layer\.\d+\.output\.dense$", r"mlp\.fc2$", r"mlp\.down_proj$"]


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def resolve_query_value(model: nn.Module, tower_label: str) -> list[str]:
    leaves = {name.rsplit(".", 1)[-1] for name in linear_names(model)}
    for query, value in QUERY_VALUE_NAMES:
        if query in leaves and value in leaves:
            return [query, value]
    raise TowerError(
        f"{tower_label}: cannot find attention query/value projections for LoRA (linear layers: {sorted(leaves)})"
    )


def resolve_output_projections(model: nn.Module, tower_label: str) -> list[str]:
    names = linear_names(model)
    found: list[str] = []
    for patterns, what in ((ATTENTION_OUTPUT_PATTERNS, "attention output"), (FFN_OUTPUT_PATTERNS, "FFN output")):
        matches = [name for name in names if any(re.search(pattern, name) for pattern in patterns)]
        if not matches:
            raise TowerError(f"{tower_label}: cannot find the {what} projections for adapters")
        found.extend(matches)
    return found
