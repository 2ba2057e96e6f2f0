"""Expand a validated suite into cells: datasets x towers x methods x matrix x seeds x repeats."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from benchmark.suite.config import CHOSEN_OPTIONS, CellConfig, SuiteConfig, hints, typed_value


@dataclass(frozen=True)
class Cell:
    cell_id: str
    config: CellConfig
    # Resolved from the method when the suite is planned (plan.cells.planned_cells), so that the launcher never looks
    # a method up by name: the cell trains from a hidden-state cache that is built, in its own process, first.
    uses_cache: bool = False
    # What `mmbench estimate` predicted for it on the device it will run on, as row columns (predicted_*); None: not
    # estimated. The launcher puts it on the cell's row, and the pool places cells by it.
    prediction: dict[str, Any] | None = None

    @property
    def predicted_peak_gib(self) -> float | None:
        value = (self.prediction or {}).get("predicted_peak_process_gib")
        return float(value) if value is not None else None

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


# Settings added after results existed, by their path in a cell's JSON, with the behaviour rows had before the setting
# existed: that value is left out of the hashes, so a store's configurations keep their ids (and their resume) when a
# new axis arrives; any other value is other work, hashed. Where a new setting's default is not the old behaviour
# (step_shapes, frozen_weights: the default cells' steps changed), the default cells get new ids: their rows do not
# mix with the old ones.
_ADDED_SETTINGS: dict[tuple[str, ...], Any] = {
    ("train", "compile"): False,
    ("train", "compile_backend"): "inductor",
    ("train", "compile_mode"): "default",
    ("train", "step_shapes"): "dynamic",
    ("train", "frozen_weights"): "fp32",
    ("train", "user_encoder"): "pre-ln",
    ("train", "sequence_model"): "sasrec",
    ("train", "sequence_options"): {},
    ("train", "objective"): "softmax",
    ("train", "objective_options"): {},
    ("method", "options", "init"): "default",  # the side networks' adapter initialisation
    ("method", "options", "gradient_checkpointing"): False,  # the end-to-end methods'
    ("method", "options", "checkpoint_reentrant"): False,
    ("method", "base_precision"): None,  # towers as stored (no quantized base)
    ("dataset", "noise"): 0.0,
    ("dataset", "noise_seed"): 0,
    ("train", "distributed"): "none",  # one process, one device
    ("train", "nproc_per_node"): 1,
    ("train", "dist_backend"): "auto",
}
# A method option added to every method that fuses parts, with the value it had: some methods had the option
# before (their rows hashed it, whatever its value), so for them it stays in the hash.
_ADDED_METHOD_OPTIONS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "fusion": ("concat", ("iisan_versa", "iisan_versa_cached", "crossan", "crossan_cached")),
}
# The same for every tower of a tower set, whatever its modality.
_ADDED_TOWER_SETTINGS: dict[str, Any] = {"revision": None}


def _added_tower_settings(plain: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    towers = plain.get("towers")
    entries = [key for key, value in towers.items() if isinstance(value, dict)] if isinstance(towers, dict) else []
    return {("towers", key, name): legacy for key in entries for name, legacy in _ADDED_TOWER_SETTINGS.items()}


# Settings of the analysis or of the watch over a run, not of the work measured: never hashed (a row's time to
# accuracy is computed with its own fraction, stored on the row; a collective's timeout only bounds a hang).
_ANALYSIS_SETTINGS = {("eval", "tta_fraction"), ("train", "dist_timeout_s")}
_ABSENT = object()


def _value(plain: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = plain
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def _without(plain: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """`plain` without the key at `path` (the containers along the path copied, the input untouched)."""
    if _value(plain, path) is _ABSENT:
        return plain
    head, *rest = path
    copy = dict(plain)
    if rest:
        copy[head] = _without(plain[head], tuple(rest))
    else:
        del copy[head]
    return copy


def _irrelevant(path: tuple[str, ...], plain: dict[str, Any]) -> bool:
    """A setting that changes nothing in this cell: where training runs in fp32 there is no compute precision other
    than fp32 to store frozen towers in; without noise, its seed draws nothing."""
    if path == ("dataset", "noise_seed"):
        return not _value(plain, ("dataset", "noise"))
    if path in (("train", "nproc_per_node"), ("train", "dist_backend")):
        return _value(plain, ("train", "distributed")) in ("none", _ABSENT)
    return path == ("train", "frozen_weights") and _value(plain, ("train", "precision")) == "fp32"


def _added_method_options(plain: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    method = _value(plain, ("method", "name"))
    return {
        ("method", "options", name): legacy
        for name, (legacy, had_it) in _ADDED_METHOD_OPTIONS.items()
        if method not in had_it
    }


def _work(plain: dict[str, Any]) -> dict[str, Any]:
    work = plain
    added = {**_ADDED_SETTINGS, **_added_tower_settings(plain), **_added_method_options(plain)}
    for path, legacy in added.items():
        if _value(plain, path) == legacy or _irrelevant(path, plain):
            work = _without(work, path)
    for path in _ANALYSIS_SETTINGS:
        work = _without(work, path)
    return work


def _digest(config: CellConfig | dict[str, Any], excluded: tuple[str, ...]) -> str:
    plain = _work(config.to_dict() if isinstance(config, CellConfig) else config)
    hashed = {key: value for key, value in plain.items() if key not in excluded}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def config_hash(config: CellConfig | dict[str, Any]) -> str:
    """Hash of one run: everything that defines the work, its seed and its repeat index."""
    return _digest(config, ("suite", "cell_id"))


def config_id(config: CellConfig | dict[str, Any]) -> str:
    """Hash of the configuration: the work without seed and repeat. One leaderboard row per config_id."""
    return _digest(config, _NOT_WORK + RUN_KEYS)


def _slug(value: Any) -> str:
    return str(value).replace("/", "_").replace(" ", "")


def _with_matrix_values(section: Any, values: dict[str, Any]) -> Any:
    """A train/eval section with the matrix's values for this combination (typed like the section's fields), each
    chosen extension keeping its own options only."""
    field_hints = hints(type(section))
    changes = {name: typed_value(field_hints[name], value) for name, value in values.items()}
    # A cell keeps its own choice's options only: options set for another choice (another sequence model of the
    # matrix) change neither its work nor its id.
    for choice, options_field in CHOSEN_OPTIONS.items():
        if hasattr(section, choice):
            chosen = changes.get(choice, getattr(section, choice))
            own = getattr(section, options_field).get(chosen)
            changes[options_field] = {chosen: own} if own else {}
    return dataclasses.replace(section, **changes) if changes else section


def expand_cells(suite: SuiteConfig) -> list[Cell]:
    """The suite's cells, repeat by repeat: every cell's first run, then every cell's second run, and so on.

    Why interleaved: a machine drifts (clocks, neighbours, heat) over minutes. Back-to-back repeats of
    one configuration would all share one stretch of that drift, and look consistent while being off;
    spread over the whole run, the drift shows as the spread between repeats, which is what intervals
    and `mmbench compare`'s time test read.
    """
    matrix_keys = list(suite.matrix)
    matrix_values = [suite.matrix[key] for key in matrix_keys]
    cells: list[Cell] = []
    for repeat, dataset, towers, method, combo, seed in itertools.product(
        range(suite.repeats),
        suite.datasets,
        suite.towers,
        suite.methods,
        itertools.product(*matrix_values),
        suite.seeds,
    ):
        if method.towers and towers.name not in method.towers:
            continue
        changes: dict[str, dict[str, Any]] = {"train": {}, "eval": {}}
        parts = [dataset.name, towers.name, method.label]
        for key, value in zip(matrix_keys, combo):
            section, _, name = key.partition(".")
            changes[section][name] = value
            parts.append(f"{name}={_slug(value)}")
        parts.append(f"seed={seed}")
        if suite.repeats > 1:
            parts.append(f"repeat={repeat}")
        cell_id = "/".join(_slug(part) for part in parts)
        config = CellConfig(
            suite=suite.name,
            cell_id=cell_id,
            dataset=dataset,
            towers=towers,
            method=method,
            train=_with_matrix_values(suite.train, changes["train"]),
            eval=_with_matrix_values(suite.eval, changes["eval"]),
            seed=seed,
            repeat=repeat,
            timeout_s=suite.run.timeout_s,
            allow_download=suite.allow_download,
        )
        cells.append(Cell(cell_id=cell_id, config=config))
    return cells
