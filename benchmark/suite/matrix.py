"""Expand a validated suite into cells: datasets x towers x methods x matrix x seeds."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cell:
    cell_id: str
    config: dict[str, Any]

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


    @property
    def config_id(self) -> str:
        return config_id(self.config)


# Keys that name or bound a run but do not change the work measured.
_NOT_WORK = ("suite", "cell_id", "timeout_s")
# Keys that tell runs of one configuration apart: a leaderboard row aggregates over them.
RUN_KEYS = ("seed", "repeat")


def _digest(config: dict[str, Any], excluded: tuple[str, ...]) -> str:
    hashed = {key: value for key, value in config.items() if key not in excluded}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def config_hash(config: dict[str, Any]) -> str:
    """Hash of one run: everything that defines the work, its seed and its repeat index."""
    return _digest(config, ("suite", "cell_id"))


def config_id(config: dict[str, Any]) -> str:
    """Hash of the configuration: the work without seed and repeat. One leaderboard row per config_id."""
    return _digest(config, _NOT_WORK + RUN_KEYS)


def _slug(value: Any) -> str:
    return str(value).replace("/", "_").replace(" ", "")


def expand_cells(suite: dict[str, Any]) -> list[Cell]:
    matrix_keys = list(suite["matrix"])
    matrix_values = [suite["matrix"][key] for key in matrix_keys]
    cells: list[Cell] = []
    repeats = suite.get("repeats", 1)
    for dataset, towers, method, combo, seed, repeat in itertools.product(
        suite["datasets"], suite["towers"], suite["methods"], itertools.product(*matrix_values), suite["seeds"], range(repeats)
    ):
        if method["towers"] and towers["name"] not in method["towers"]:
            continue
        train = copy.deepcopy(suite["train"])
        evaluation = copy.deepcopy(suite["eval"])
        sections = {"train": train, "eval": evaluation}
        parts = [dataset["name"], towers["name"], method["label"]]
        for key, value in zip(matrix_keys, combo):
            section, _, name = key.partition(".")
            sections[section][name] = value
            parts.append(f"{name}={_slug(value)}")
        parts.append(f"seed={seed}")
        if repeats > 1:
            parts.append(f"repeat={repeat}")
        config = {
            "suite": suite["name"],
            "dataset": copy.deepcopy(dataset),
            "towers": copy.deepcopy(towers),
            "method": copy.deepcopy(method),
            "train": train,
            "eval": evaluation,
            "seed": seed,
            "repeat": repeat,
            "timeout_s": suite["run"]["timeout_s"],
            "allow_download": suite["allow_download"],
        }
        cell_id = "/".join(_slug(part) for part in parts)
        config["cell_id"] = cell_id
        cells.append(Cell(cell_id=cell_id, config=config))
    return cells
