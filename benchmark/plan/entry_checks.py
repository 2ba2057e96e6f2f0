"""The checks of one suite entry against the catalog: a dataset's format and path, a tower set's presets and
weights, a method's name, options and modalities, a matrix key, unique names, and the settings this machine must
support."""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import difflib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark import catalog
from benchmark.errors import MMBenchError
from benchmark.formats.registry import get_format
from benchmark.methods.registry import get_method_class
from benchmark.modalities.registry import modality_names
from benchmark.models.hub import HubWeightsMissing, looks_like_hub_id, resolve_hub_weights
from benchmark.models.presets_registry import get_preset
from benchmark.models.quantized_base import INSTALL_HINT, bitsandbytes_installed
from benchmark.plan.feasibility import (
    largest_gpu,
    plan_problem,
    tower_shape,
)
from benchmark.registry import closest_hint
from benchmark.suite.config import (
    CHOSEN_OPTIONS,
    CUDA_GRAPH_MODES,
    EvalConfig,
    TrainConfig,
    build,
    hints,
)
from benchmark.suite.schema import Validator
from benchmark.suite.yaml_lines import KeyPath

if TYPE_CHECKING:
    pass


# Compilation, then the CUDA graphs' warm-up run and recording: three calls before a step replays a graph.
MIN_CUDA_GRAPH_WARMUP = 3


# Sections whose keys a `matrix:` entry may vary.
MATRIX_SECTIONS = {"train": TrainConfig, "eval": EvalConfig}


def check_dataset(index: int, dataset: dict[str, Any], validator: Validator, suite_dir: Path) -> None:

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


def check_tower_set(
    index: int, tower_set: dict[str, Any], validator: Validator, suite_dir: Path, allow_download: bool = False
) -> None:

    modalities = modality_names()
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
            problem = resolve_tower_weights(tower, suite_dir, allow_download)
            if problem is not None:
                validator.problem(("towers", index, modality, "weights"), problem)


def check_method(
    index: int,
    method: dict[str, Any],
    suite: dict[str, Any],
    validator: Validator,
    guard: Callable[[], contextlib.AbstractContextManager[None]],
) -> None:

    method_class = get_method_class(method["name"])
    options_path: tuple[str | int, ...] = ("methods", index, "options")
    method["options"] = validator.section(method["options"], method_class.Options, options_path)
    if not validator.reported(options_path):
        for key_path, message in method_class.options_problems(build(method_class.Options, method["options"])):
            validator.problem(options_path + key_path, message)
    if method["label"] is None:
        method["label"] = method["name"]
    tower_sets = suite.get("towers") or []
    tower_names = [t.get("name") for t in tower_sets]
    for position, name in enumerate(method["towers"]):
        if name not in tower_names:
            hint = difflib.get_close_matches(name, [n for n in tower_names if isinstance(n, str)], n=1)
            validator.problem(
                ("methods", index, "towers", position),
                f"unknown tower set '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""),
            )
    modalities = modality_names()
    for tower_index, tower_set in enumerate(tower_sets):
        with guard():
            if method["towers"] and tower_set["name"] not in method["towers"]:
                continue
            where = f"tower set '{tower_set['name']}', towers[{tower_index}]"
            problem = modality_problem(method_class, {m for m in modalities if tower_set.get(m)})
            if problem:
                validator.problem(
                    ("methods", index),
                    f"method '{method['name']}' {problem} in tower set '{tower_set['name']}' "
                    f"(towers[{tower_index}]); restrict it with `towers: [...]`",
                )
            tower_problems = [
                method_class.tower_problem(modality, tower_set[modality]["preset"])
                for modality in modalities
                if tower_set.get(modality)
            ]
            for tower_problem in filter(None, tower_problems):
                validator.problem(
                    ("methods", index), f"{tower_problem} ({where}); restrict the method with `towers: [...]`"
                )
            if problem or any(tower_problems) or validator.reported(("methods", index, "options")):
                continue  # the layer plan below needs towers the method accepts and valid options
            if validator.reported(("towers", tower_index)):
                continue
            shapes = {m: tower_shape(m, tower_set[m]) for m in modalities if tower_set.get(m)}
            known = {m: shape for m, shape in shapes.items() if shape is not None}
            if len(known) < len(shapes):
                continue  # a tower whose preset does not tell its layers: the cell checks the plan
            options = build(method_class.Options, method["options"])
            plan = plan_problem(method_class, options, known, suite["train"]["embed_dim"])
            if plan:
                validator.problem(("methods", index, "options"), f"{plan} ({where})")


def check_measured_steps(suite: dict[str, Any], validator: Validator) -> None:
    """A cell whose steps are all warm-up measures nothing (it would end `error: no measured steps`)."""
    for (max_steps, path), (warmup, _) in itertools.product(
        setting_values(suite, "train", "max_steps"), setting_values(suite, "train", "warmup_steps")
    ):
        if max_steps is not None and max_steps <= warmup:
            validator.problem(
                path,
                f"max_steps {max_steps} is not above warmup_steps {warmup}: every step would be warm-up, "
                "nothing measured",
            )


def setting_values(suite: dict[str, Any], section: str, key: str) -> list[tuple[Any, KeyPath]]:
    """Every value a train/eval key takes across the matrix, with the key path that sets it."""
    matrix_key = f"{section}.{key}"
    if matrix_key in suite["matrix"]:
        return [(value, ("matrix", matrix_key, index)) for index, value in enumerate(suite["matrix"][matrix_key])]
    return [(suite[section][key], (section, key))]


def check_precision_on_cpu(suite: dict[str, Any], validator: Validator) -> None:
    # fp16 autocast on a CPU runs emulated kernels many times slower than fp32: such a row measures the emulation.
    if suite["train"]["device"] != "cpu" or "train.device" in suite["matrix"]:
        return
    for value, path in setting_values(suite, "train", "precision"):
        if value == "fp16":
            validator.problem(
                path,
                "fp16 on device 'cpu' measures emulated half precision (many times slower than fp32); "
                "use fp32 or bf16 on a CPU, fp16 on a GPU",
            )


def check_cuda_graphs(suite: dict[str, Any], validator: Validator) -> None:
    """compile_mode is inductor's; its CUDA-graph modes need a CUDA device, shapes that repeat and warm-up steps
    for the capture (recorded in the first calls, which must not be timed)."""
    train = suite["train"]
    backends = [value for value, _ in setting_values(suite, "train", "compile_backend")]
    for mode, path in setting_values(suite, "train", "compile_mode"):
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


def check_quantized_bases(suite: dict[str, Any], validator: Validator) -> None:
    """A quantized base (`base_precision`) under a method that trains the base weights is refused, and so is one on
    device cpu; where the cells would only be recorded as skipped (no bitsandbytes, no GPU visible here), a warning
    says so before anything runs."""
    devices = [value for value, _ in setting_values(suite, "train", "device")]
    local = suite["run"]["launcher"] in ("local", "pool")
    for index, method in enumerate(suite.get("methods") or []):
        precision = method.get("base_precision")
        if precision is None:
            continue
        path: KeyPath = ("methods", index, "base_precision")
        method_class = get_method_class(method["name"])
        if not validator.reported(("methods", index, "options")):
            problem = method_class.quantized_base_problem(build(method_class.Options, method["options"]), precision)
            if problem is not None:
                validator.problem(path, f"method '{method['name']}' cannot train on a {precision} base: {problem}")
        if devices == ["cpu"]:
            validator.problem(
                path,
                f"base_precision {precision} runs on a CUDA GPU (bitsandbytes' quantized kernels), and train.device "
                "is cpu: use device auto or cuda",
            )
            continue
        if not bitsandbytes_installed():
            validator.warn(
                path,
                f"bitsandbytes is not installed here ({INSTALL_HINT}): unless the machine that runs them has it, "
                "this method's cells are recorded as skipped",
            )
        elif local and "cuda" not in devices and largest_gpu() is None:
            validator.warn(path, "no CUDA GPU is visible here: this method's cells would be recorded as skipped")


def check_chosen_options(suite: dict[str, Any], validator: Validator) -> None:
    """`train.sequence_options` and `train.objective_options`: keyed by names of the kind, each entry checked
    against that extension's options (unknown keys with a did-you-mean) and completed with its defaults, so that a
    cell's configuration, and its id, are the same whether a default was written or not. Options of an extension no
    cell chooses are a warning (most likely a typo in the matrix or the choice)."""
    choices = {item.name: item.metadata["choices"] for item in dataclasses.fields(TrainConfig)}
    for choice, options_field in CHOSEN_OPTIONS.items():
        kind = choices[choice]
        path: KeyPath = ("train", options_field)
        given = suite["train"].get(options_field)
        if not isinstance(given, dict):
            continue
        if f"train.{options_field}" in suite["matrix"]:
            validator.problem(("matrix", f"train.{options_field}"), f"set {options_field} in train:, by name")
            continue
        known = catalog.names(kind)
        chosen = [value for value, _ in setting_values(suite, "train", choice) if value in known]
        completed: dict[str, Any] = {}
        for name in dict.fromkeys([*given, *chosen]):
            if name not in known:
                validator.problem(
                    path + (name,),
                    f"unknown {choice.replace('_', ' ')} '{name}' ({closest_hint(name, known)}known: "
                    f"{', '.join(known)})",
                )
                continue
            options_type = catalog.options_of(kind, name)
            values = validator.section(given.get(name), options_type, path + (name,))
            if dataclasses.fields(options_type):
                completed[name] = values
            if name in given and name not in chosen:
                validator.warn(path + (name,), f"no cell uses {choice} '{name}': these options change nothing")
        suite["train"][options_field] = completed


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


def check_matrix_entry(key: str, values: Any, validator: Validator) -> None:
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


def check_unique(names: list[str], section: str, validator: Validator, what: str = "name", hint: str = "") -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            validator.problem((section, index), f"duplicate {what} '{name}'{hint}")
        seen.add(name)


def resolve_tower_weights(tower: dict[str, Any], suite_dir: Path, allow_download: bool) -> str | None:
    """Resolve a tower entry's weights in place: a local directory to its absolute path, a Hub id's revision to the
    commit it names in the Hub cache (downloaded first if allowed). The problem, or None."""
    text = tower["weights"]
    directory = resolve_weights(text, suite_dir)
    if directory.is_dir():
        tower["weights"] = str(directory)
        return None if tower.get("revision") is None else "`revision` names a Hub commit; these weights are a directory"
    if not looks_like_hub_id(text):
        return f"local weights directory not found: {text} (use 'random' for architecture-only towers)"
    try:
        hub = resolve_hub_weights(text, tower.get("revision"), allow_download)
    except HubWeightsMissing as error:
        return f"{error} (no local directory {directory} either)"
    tower["revision"] = hub.commit
    return None


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


@contextlib.contextmanager
def unless_broken(earlier_problems: bool) -> Iterator[None]:
    """Run one entry's checks of a later stage. Where an earlier stage reported problems, an entry it found broken
    (an unknown name, a missing key, a value of the wrong type) cannot be checked further: it is skipped, its
    problem already listed. Without earlier problems an exception here is a bug, and propagates."""
    try:
        yield
    except (MMBenchError, LookupError, TypeError, ValueError, AttributeError):
        if not earlier_problems:
            raise
