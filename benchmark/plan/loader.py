"""Read a suite file, validate it completely, and return its typed configuration. Every problem comes back with
file:line."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmark import catalog
from benchmark.errors import SuiteError
from benchmark.plan.data_checks import check_against_data
from benchmark.plan.distributed_checks import check_distributed
from benchmark.plan.entry_checks import (
    check_chosen_options,
    check_cuda_graphs,
    check_dataset,
    check_matrix_entry,
    check_measured_steps,
    check_method,
    check_precision_on_cpu,
    check_quantized_bases,
    check_tower_set,
    check_unique,
    unless_broken,
)
from benchmark.results.schema import EVAL_KS
from benchmark.suite.config import (
    SuiteConfig,
    build,
)
from benchmark.suite.schema import Validator
from benchmark.suite.shipped import suite_path
from benchmark.suite.yaml_lines import KeyPath, load_yaml_with_lines

if TYPE_CHECKING:
    pass

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def load_suite(
    path: str | Path,
    overrides: list[str] | None = None,
    repeats: int | None = None,
    check_data: bool = True,
    warnings: list[str] | None = None,
    decode_media: bool = False,
) -> SuiteConfig:
    """Return the validated, typed suite (defaults filled in); raise SuiteError listing every problem.

    `overrides` are `section.key=value` strings (from `mmbench run --set`), applied before validation;
    `repeats` replaces the suite's `repeats`. With `check_data`, each dataset is read once to check it against
    the suite: batch sizes and steps against its training sequences, max_seq_len against its longest sequence and
    the machine's memory, every media file a tower reads present (`decode_media`: and decodable). Every stage runs
    even where an earlier one found problems, so that all of them are listed at once. `warnings`, when given,
    receives what the suite may run with but probably should not, in the problems' format.
    """
    path = suite_path(path)  # a file, or a shipped suite by name
    data, lines = load_yaml_with_lines(path)
    validator = Validator(str(path), lines, catalog.names)
    if not isinstance(data, dict):
        raise SuiteError([f"{path}:1: the suite must be a mapping of keys (name, datasets, towers, methods, ...)"])
    _apply_overrides(data, overrides or [], lines, str(path))
    if repeats is not None:
        data["repeats"] = repeats
    if isinstance(data.get("methods"), list):
        # `- lora` is shorthand for `- {name: lora}`.
        data["methods"] = [{"name": item} if isinstance(item, str) else item for item in data["methods"]]
    suite = validator.section(data, SuiteConfig, ())
    _check_semantics(suite, validator, path.parent)
    if check_data:
        check_against_data(suite, validator, decode_media)
    if warnings is not None:
        warnings.extend(validator.standing_warnings())
    if validator.problems:
        raise SuiteError(validator.problems)
    suite["source"] = str(path)
    config: SuiteConfig = build(SuiteConfig, suite, catalog.method_options)
    return config


def _apply_overrides(data: dict[str, Any], overrides: list[str], lines: dict[KeyPath, int], source: str) -> None:
    problems = []
    matrix: dict[str, Any] = data["matrix"] if isinstance(data.get("matrix"), dict) else {}
    for override in overrides:
        key, separator, text = override.partition("=")
        section, _, name = key.strip().partition(".")
        if not separator or section not in ("train", "eval", "run") or not name:
            problems.append(f"--set {override}: expected section.key=value with section train, eval or run")
            continue
        if f"{section}.{name}" in matrix:
            line = lines.get(("matrix", f"{section}.{name}"), 1)
            problems.append(
                f"--set {override}: {source}:{line}: the suite's matrix also sets {section}.{name}, "
                "so --set would be ignored; change the matrix entry instead"
            )
            continue
        problem = _set_nested(data, [section, *name.split(".")], yaml.safe_load(text))
        if problem:
            problems.append(f"--set {override}: {problem}")
    if problems:
        raise SuiteError(problems)


def _set_nested(data: dict[str, Any], path: list[str], value: Any) -> str | None:
    """Set `data[a][b][c] = value` for the path [a, b, c] (`run.slurm.partition`), making the mappings a suite
    left out; a key that holds something other than a mapping is the problem returned."""
    node = data
    for depth, key in enumerate(path[:-1]):
        if node.get(key) is None:
            node[key] = {}
        if not isinstance(node[key], dict):
            return f"'{'.'.join(path[: depth + 1])}' in the suite is not a mapping"
        node = node[key]
    node[path[-1]] = value
    return None


def _check_semantics(suite: dict[str, Any], validator: Validator, suite_dir: Path) -> None:

    guard = functools.partial(unless_broken, bool(validator.problems))
    for key in ("datasets", "towers", "methods"):
        if key in suite and not suite[key]:
            validator.problem((key,), "must list at least one entry")
    with guard():
        if not PLAIN_NAME.fullmatch(suite["name"]):
            # The name becomes a directory under --results: a path in it would write elsewhere.
            validator.problem(
                ("name",),
                f"'{suite['name']}' is not a plain name (letters, digits, '.', '_' and '-', "
                "not starting with '.' or '-'): it names the run directory",
            )
    with guard():
        for position, k in enumerate(suite["eval"]["ks"]):
            if k not in EVAL_KS:
                validator.problem(
                    ("eval", "ks", position),
                    f"@{k} is not a stored cut-off: rows have HR/NDCG columns for {', '.join(map(str, EVAL_KS))}",
                )
    for index, dataset in enumerate(suite.get("datasets") or []):
        with guard():
            check_dataset(index, dataset, validator, suite_dir)
    for index, tower_set in enumerate(suite.get("towers") or []):
        with guard():
            check_tower_set(index, tower_set, validator, suite_dir, bool(suite.get("allow_download")))
    for index, method in enumerate(suite.get("methods") or []):
        with guard():
            check_method(index, method, suite, validator, guard)
    for key, names, what, hint in (
        ("datasets", "name", "name", ""),
        ("towers", "name", "name", ""),
        ("methods", "label", "label", " (set `label:` to tell them apart)"),
    ):
        with guard():
            check_unique([entry[names] for entry in suite.get(key) or []], key, validator, what, hint)
    for key, values in (suite.get("matrix") or {}).items():
        check_matrix_entry(str(key), values, validator)
    for check in (
        check_precision_on_cpu,
        check_cuda_graphs,
        check_measured_steps,
        check_quantized_bases,
        check_chosen_options,
        check_distributed,
    ):
        with guard():
            check(suite, validator)
    with guard():
        if not suite["seeds"]:
            validator.problem(("seeds",), "must list at least one seed")
        for position, seed in enumerate(suite["seeds"]):
            if seed in suite["seeds"][:position]:
                validator.problem(
                    ("seeds", position), f"seed {seed} is listed twice (use `repeats:` to run a cell again)"
                )


__all__ = ["load_suite"]
