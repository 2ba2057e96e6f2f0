"""Read a suite file, validate it completely, and return its typed configuration. Every problem comes back with
file:line."""

from __future__ import annotations

import codecs
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import SuiteError
from benchmark.suite.config import (
    CUDA_GRAPH_MODES,
    DatasetConfig,
    EvalConfig,
    SuiteConfig,
    TrainConfig,
    build,
    hints,
)
from benchmark.suite.schema import Validator
from benchmark.suite.yaml_lines import KeyPath, load_yaml_with_lines

# Compilation, then the CUDA graphs' warm-up run and recording: three calls before a step replays a graph.
MIN_CUDA_GRAPH_WARMUP = 3
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Sections whose keys a `matrix:` entry may vary.
MATRIX_SECTIONS = {"train": TrainConfig, "eval": EvalConfig}


def load_suite(
    path: str | Path, overrides: list[str] | None = None, repeats: int | None = None, check_data: bool = True
) -> SuiteConfig:
    """Return the validated, typed suite (defaults filled in); raise SuiteError listing every problem.

    `overrides` are `section.key=value` strings (from `mmbench run --set`), applied before validation;
    `repeats` replaces the suite's `repeats`. With `check_data`, each dataset is read once to check that
    every batch size fits its training sequences.
    """
    path = Path(path)
    data, lines = load_yaml_with_lines(path)
    validator = Validator(str(path), lines)
    if not isinstance(data, dict):
        raise SuiteError([f"{path}:1: the suite must be a mapping of keys (name, datasets, towers, methods, ...)"])
    _apply_overrides(data, overrides or [], lines, str(path))
    if repeats is not None:
        data["repeats"] = repeats
    if isinstance(data.get("methods"), list):
        # `- lora` is shorthand for `- {name: lora}`.
        data["methods"] = [{"name": item} if isinstance(item, str) else item for item in data["methods"]]
    suite = validator.section(data, SuiteConfig, ())
    if not validator.problems:
        _check_semantics(suite, validator, path.parent)
    if not validator.problems and check_data:
        _check_against_data(suite, validator)
    if validator.problems:
        raise SuiteError(validator.problems)
    suite["source"] = str(path)
    config: SuiteConfig = build(SuiteConfig, suite)
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
        if not isinstance(data.get(section, {}), dict):
            problems.append(f"--set {override}: '{section}' in the suite is not a mapping")
            continue
        data.setdefault(section, {})
        if data[section] is None:
            data[section] = {}
        data[section][name] = yaml.safe_load(text)
    if problems:
        raise SuiteError(problems)


def _check_semantics(suite: dict[str, Any], validator: Validator, suite_dir: Path) -> None:
    from benchmark.formats.registry import get_format
    from benchmark.methods.registry import get_method_class
    from benchmark.modalities.registry import modality_names
    from benchmark.models.presets_registry import get_preset
    from benchmark.results.schema import EVAL_KS

    for key in ("datasets", "towers", "methods"):
        if not suite[key]:
            validator.problem((key,), "must list at least one entry")
    if not PLAIN_NAME.fullmatch(suite["name"]):
        # The name becomes a directory under --results: a path in it would write elsewhere.
        validator.problem(
            ("name",),
            f"'{suite['name']}' is not a plain name (letters, digits, '.', '_' and '-', "
            "not starting with '.' or '-'): it names the run directory",
        )
    for position, k in enumerate(suite["eval"]["ks"]):
        if k not in EVAL_KS:
            validator.problem(
                ("eval", "ks", position),
                f"@{k} is not a stored cut-off: rows have HR/NDCG columns for {', '.join(map(str, EVAL_KS))}",
            )

    for index, dataset in enumerate(suite["datasets"]):
        try:
            codecs.lookup(dataset["encoding"])
        except LookupError:
            validator.problem(
                ("datasets", index, "encoding"),
                f"unknown text encoding '{dataset['encoding']}' (e.g. utf-8, latin-1, cp1252)",
            )
        data_format = get_format(dataset["format"])
        _check_options(dataset["options"], data_format.options, validator, ("datasets", index, "options"))
        if data_format.needs_path:
            if not dataset["path"]:
                validator.problem(("datasets", index, "path"), f"format '{dataset['format']}' needs a path")
            elif not _resolve(dataset["path"], suite_dir).is_dir():
                validator.problem(("datasets", index, "path"), f"dataset directory not found: {dataset['path']}")
            else:
                dataset["path"] = str(_resolve(dataset["path"], suite_dir))
    _check_unique([d["name"] for d in suite["datasets"]], "datasets", validator)

    modalities = modality_names()
    for index, tower_set in enumerate(suite["towers"]):
        present = [m for m in modalities if tower_set.get(m)]
        if not present:
            validator.problem(("towers", index), f"a tower set needs at least one of {', '.join(modalities)}")
        for modality in present:
            tower = tower_set[modality]
            preset = get_preset(tower["preset"])
            if preset.modality != modality:
                validator.problem(
                    ("towers", index, modality, "preset"),
                    f"preset '{tower['preset']}' is a {preset.modality} tower, not {modality}",
                )
            if tower["weights"] != "random":
                weights_dir = resolve_weights(tower["weights"], suite_dir)
                if not weights_dir.is_dir():
                    validator.problem(
                        ("towers", index, modality, "weights"),
                        f"local weights directory not found: {tower['weights']} (use 'random' for architecture-only "
                        "towers)",
                    )
                else:
                    tower["weights"] = str(weights_dir)
    _check_unique([t["name"] for t in suite["towers"]], "towers", validator)

    for index, method in enumerate(suite["methods"]):
        method_class = get_method_class(method["name"])
        method["options"] = validator.section(method["options"], method_class.Options, ("methods", index, "options"))
        if method["label"] is None:
            method["label"] = method["name"]
        tower_names = [t["name"] for t in suite["towers"]]
        for position, name in enumerate(method["towers"]):
            if name not in tower_names:
                hint = difflib.get_close_matches(name, tower_names, n=1)
                validator.problem(
                    ("methods", index, "towers", position),
                    f"unknown tower set '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""),
                )
        for tower_index, tower_set in enumerate(suite["towers"]):
            if method["towers"] and tower_set["name"] not in method["towers"]:
                continue
            problem = modality_problem(method_class, {m for m in modalities if tower_set.get(m)})
            if problem:
                validator.problem(
                    ("methods", index),
                    f"method '{method['name']}' {problem} in tower set '{tower_set['name']}' "
                    f"(towers[{tower_index}]); restrict it with `towers: [...]`",
                )
            for modality in modalities:
                tower_problem = (
                    method_class.tower_problem(modality, tower_set[modality]["preset"])
                    if tower_set.get(modality)
                    else None
                )
                if tower_problem:
                    validator.problem(
                        ("methods", index),
                        f"{tower_problem} (tower set '{tower_set['name']}', towers[{tower_index}]); "
                        "restrict the method with `towers: [...]`",
                    )
    _check_unique(
        [m["label"] for m in suite["methods"]], "methods", validator, "label", " (set `label:` to tell them apart)"
    )

    for key, values in suite["matrix"].items():
        _check_matrix_entry(str(key), values, validator)
    _check_precision_on_cpu(suite, validator)
    _check_cuda_graphs(suite, validator)
    if not suite["seeds"]:
        validator.problem(("seeds",), "must list at least one seed")
    for position, seed in enumerate(suite["seeds"]):
        if seed in suite["seeds"][:position]:
            validator.problem(("seeds", position), f"seed {seed} is listed twice (use `repeats:` to run a cell again)")


def _setting_values(suite: dict[str, Any], section: str, key: str) -> list[tuple[Any, KeyPath]]:
    """Every value a train/eval key takes across the matrix, with the key path that sets it."""
    matrix_key = f"{section}.{key}"
    if matrix_key in suite["matrix"]:
        return [(value, ("matrix", matrix_key, index)) for index, value in enumerate(suite["matrix"][matrix_key])]
    return [(suite[section][key], (section, key))]


def _check_precision_on_cpu(suite: dict[str, Any], validator: Validator) -> None:
    # fp16 autocast on a CPU runs emulated kernels many times slower than fp32: such a row measures the emulation.
    if suite["train"]["device"] != "cpu" or "train.device" in suite["matrix"]:
        return
    for value, path in _setting_values(suite, "train", "precision"):
        if value == "fp16":
            validator.problem(
                path,
                "fp16 on device 'cpu' measures emulated half precision (many times slower than fp32); "
                "use fp32 or bf16 on a CPU, fp16 on a GPU",
            )


def _check_cuda_graphs(suite: dict[str, Any], validator: Validator) -> None:
    """compile_mode is inductor's; its CUDA-graph modes need a CUDA device, shapes that repeat and warm-up steps
    for the capture (recorded in the first calls, which must not be timed)."""
    train = suite["train"]
    backends = [value for value, _ in _setting_values(suite, "train", "compile_backend")]
    for mode, path in _setting_values(suite, "train", "compile_mode"):
        if mode == "default":
            continue
        if backends != ["inductor"]:
            validator.problem(path, f"compile_mode '{mode}' is inductor's: set train.compile_backend: inductor")
        if mode not in CUDA_GRAPH_MODES:
            continue
        if train["device"] == "cpu" and "train.device" not in suite["matrix"]:
            validator.problem(path, f"compile_mode '{mode}' captures CUDA graphs: it needs device cuda (or auto)")
        if train["step_shapes"] == "dynamic" and "train.step_shapes" not in suite["matrix"]:
            validator.problem(
                path,
                f"compile_mode '{mode}' captures one CUDA graph per shape: use train.step_shapes static or bucketed",
            )
        if train["warmup_steps"] < MIN_CUDA_GRAPH_WARMUP and "train.warmup_steps" not in suite["matrix"]:
            validator.problem(
                path,
                f"compile_mode '{mode}' records its CUDA graphs during the first steps: warmup_steps must be at least "
                f"{MIN_CUDA_GRAPH_WARMUP} so that no recording is timed",
            )


def _check_against_data(suite: dict[str, Any], validator: Validator) -> None:
    """A batch larger than the training set runs one step per epoch, all of it warm-up: nothing would be measured;
    a cut-off K at or beyond the item count makes HR@K trivially 1."""
    from benchmark.data.dataset import load_raw_dataset, split_leave_one_out
    from benchmark.errors import MMBenchError

    for index, dataset in enumerate(suite["datasets"]):
        if dataset["format"] == "synthetic":
            # Known without generating it: one sequence per user, every one long enough when min_len >= 4
            # (shorter ones may drop out; the cell itself checks the exact count).
            sequences, items = dataset["options"]["users"], dataset["options"]["items"]
        else:
            try:
                raw = load_raw_dataset(build(DatasetConfig, dataset))
                sequences, items = len(split_leave_one_out(raw, 1).train_sequences), raw.n_items
            except MMBenchError as error:
                validator.problem(("datasets", index), f"dataset '{dataset['name']}' cannot be read: {error}")
                continue
        for position, k in enumerate(suite["eval"]["ks"]):
            if k >= items:
                validator.problem(
                    ("eval", "ks", position),
                    f"@{k} is not below the {items} items of dataset '{dataset['name']}': every target would be a hit",
                )
        for value, path in _setting_values(suite, "train", "batch_size"):
            if value > sequences:
                validator.problem(
                    path,
                    f"batch_size {value} is larger than the {sequences} training sequences of dataset "
                    f"'{dataset['name']}': every step would be warm-up, nothing measured",
                )


def modality_problem(method_class: Any, present: set[str]) -> str | None:
    """Why a method cannot run on towers of these modalities, or None."""
    missing = set(method_class.required_modalities) - present
    if missing:
        return f"needs {sorted(missing)} towers, missing"
    allowed = method_class.allowed_modalities
    if allowed is not None and present - set(allowed):
        return f"uses only {list(allowed)} towers, not {sorted(present - set(allowed))}"
    if len(present) < method_class.min_modalities:
        return f"needs at least {method_class.min_modalities} towers, has {len(present)}"
    return None


def _check_matrix_entry(key: str, values: Any, validator: Validator) -> None:
    import dataclasses

    path = ("matrix", key)
    section, _, name = key.partition(".")
    if section not in MATRIX_SECTIONS or not name:
        validator.problem(
            path, f"matrix keys are dotted paths into {', '.join(MATRIX_SECTIONS)} (e.g. train.batch_size)"
        )
        return
    fields = {item.name: item for item in dataclasses.fields(MATRIX_SECTIONS[section])}
    if name not in fields:
        hint = difflib.get_close_matches(name, list(fields), n=1)
        validator.problem(
            path, f"unknown key '{name}' in {section}" + (f" (did you mean '{section}.{hint[0]}'?)" if hint else "")
        )
        return
    if not isinstance(values, list) or not values:
        validator.problem(path, "expected a non-empty list of values")
        return
    for index, value in enumerate(values):
        validator.value(value, hints(MATRIX_SECTIONS[section])[name], fields[name], path + (index,))


def _check_options(options: dict[str, Any], declared: dict[str, Any], validator: Validator, path: KeyPath) -> None:
    """A dataset format's options, declared as name -> default."""
    for key, value in options.items():
        if key not in declared:
            hint = difflib.get_close_matches(str(key), list(declared), n=1)
            known = ", ".join(declared) or "none"
            validator.problem(
                path + (key,),
                "unknown option" + (f" (did you mean '{hint[0]}'?)" if hint else f" (known options: {known})"),
            )
            continue
        default = declared[key]
        if (
            default is not None
            and not isinstance(value, type(default))
            and not (isinstance(default, float) and isinstance(value, int))
        ):
            validator.problem(path + (key,), f"expected {type(default).__name__}, got {type(value).__name__} {value!r}")
    for key, default in declared.items():
        options.setdefault(key, default)


def _check_unique(names: list[str], section: str, validator: Validator, what: str = "name", hint: str = "") -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            validator.problem((section, index), f"duplicate {what} '{name}'{hint}")
        seen.add(name)


def resolve_weights(text: str, suite_dir: Path) -> Path:
    """A local checkpoint directory: a path (relative to the working or suite directory), or
    `package:<module>/<folder>` for weights shipped inside an installed Python package."""
    if text.startswith("package:"):
        import importlib.util

        module, _, folder = text.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            return Path(f"<package {module} not installed>")
        return (Path(spec.origin).parent / folder).resolve()
    return _resolve(text, suite_dir)


def _resolve(path_text: str, suite_dir: Path) -> Path:
    path = Path(path_text).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (suite_dir / path).resolve()


__all__ = ["load_suite"]
