"""Read a suite file, validate it completely, and return its typed configuration. Every problem comes back with
file:line."""

from __future__ import annotations

import codecs
import contextlib
import difflib
import functools
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmark import catalog
from benchmark.errors import MMBenchError, SuiteError
from benchmark.plan.feasibility import (
    GIB,
    encoded_slots,
    far_beyond,
    memory_limit,
    plan_problem,
    step_memory,
    tower_shape,
)
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

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset

# Compilation, then the CUDA graphs' warm-up run and recording: three calls before a step replays a graph.
MIN_CUDA_GRAPH_WARMUP = 3
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Sections whose keys a `matrix:` entry may vary.
MATRIX_SECTIONS = {"train": TrainConfig, "eval": EvalConfig}
# Media problems a validate line names before "... and N more" (`data inspect` lists every one).
MEDIA_PROBLEMS_LISTED = 3


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
    path = Path(path)
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
        _check_against_data(suite, validator, decode_media)
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


@contextlib.contextmanager
def _unless_broken(earlier_problems: bool) -> Iterator[None]:
    """Run one entry's checks of a later stage. Where an earlier stage reported problems, an entry it found broken
    (an unknown name, a missing key, a value of the wrong type) cannot be checked further: it is skipped, its
    problem already listed. Without earlier problems an exception here is a bug, and propagates."""
    try:
        yield
    except (MMBenchError, LookupError, TypeError, ValueError, AttributeError):
        if not earlier_problems:
            raise


def _check_semantics(suite: dict[str, Any], validator: Validator, suite_dir: Path) -> None:
    from benchmark.results.schema import EVAL_KS

    guard = functools.partial(_unless_broken, bool(validator.problems))
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
            _check_dataset(index, dataset, validator, suite_dir)
    for index, tower_set in enumerate(suite.get("towers") or []):
        with guard():
            _check_tower_set(index, tower_set, validator, suite_dir)
    for index, method in enumerate(suite.get("methods") or []):
        with guard():
            _check_method(index, method, suite, validator, guard)
    for key, names, what, hint in (
        ("datasets", "name", "name", ""),
        ("towers", "name", "name", ""),
        ("methods", "label", "label", " (set `label:` to tell them apart)"),
    ):
        with guard():
            _check_unique([entry[names] for entry in suite.get(key) or []], key, validator, what, hint)
    for key, values in (suite.get("matrix") or {}).items():
        _check_matrix_entry(str(key), values, validator)
    for check in (_check_precision_on_cpu, _check_cuda_graphs, _check_measured_steps):
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


def _check_dataset(index: int, dataset: dict[str, Any], validator: Validator, suite_dir: Path) -> None:
    from benchmark.formats.registry import get_format

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


def _check_tower_set(index: int, tower_set: dict[str, Any], validator: Validator, suite_dir: Path) -> None:
    from benchmark.modalities.registry import modality_names
    from benchmark.models.presets_registry import get_preset

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
            weights_dir = resolve_weights(tower["weights"], suite_dir)
            if not weights_dir.is_dir():
                validator.problem(
                    ("towers", index, modality, "weights"),
                    f"local weights directory not found: {tower['weights']} (use 'random' for architecture-only "
                    "towers)",
                )
            else:
                tower["weights"] = str(weights_dir)


def _check_method(
    index: int,
    method: dict[str, Any],
    suite: dict[str, Any],
    validator: Validator,
    guard: Callable[[], contextlib.AbstractContextManager[None]],
) -> None:
    from benchmark.methods.registry import get_method_class
    from benchmark.modalities.registry import modality_names

    method_class = get_method_class(method["name"])
    method["options"] = validator.section(method["options"], method_class.Options, ("methods", index, "options"))
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


def _check_measured_steps(suite: dict[str, Any], validator: Validator) -> None:
    """A cell whose steps are all warm-up measures nothing (it would end `error: no measured steps`)."""
    for (max_steps, path), (warmup, _) in itertools.product(
        _setting_values(suite, "train", "max_steps"), _setting_values(suite, "train", "warmup_steps")
    ):
        if max_steps is not None and max_steps <= warmup:
            validator.problem(
                path,
                f"max_steps {max_steps} is not above warmup_steps {warmup}: every step would be warm-up, "
                "nothing measured",
            )


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


@dataclass(frozen=True)
class _DataFacts:
    """What the data checks need to know about one dataset (read once, or known from synthetic options)."""

    name: str
    users: int
    sequences: int  # training sequences: one per user of MIN_SEQUENCE_LENGTH items or more
    items: int
    longest: int  # items in the longest user sequence
    raw: RawDataset | None = None  # a real dataset as read (media checks); None for synthetic data


def _check_against_data(suite: dict[str, Any], validator: Validator, decode_media: bool) -> None:
    """Everything a dataset decides about its cells: a cut-off K at or beyond the item count makes HR@K trivially
    1; a batch larger than the training set, or fewer steps than warm-up, measures nothing; max_seq_len far beyond
    the longest sequence is padding, and one whose step cannot fit in memory kills the machine; a media file a tower
    reads must exist (and, with `decode_media`, decode)."""
    guard = functools.partial(_unless_broken, bool(validator.problems))
    memory: dict[KeyPath, tuple[int, str]] = {}  # per max_seq_len setting: the largest step bound, explained
    for index, dataset in enumerate(suite.get("datasets") or []):
        if validator.reported(("datasets", index)):
            continue  # its entry is broken (unknown format, missing directory): already reported
        facts = None
        with guard():
            facts = _dataset_facts(index, dataset, validator)
        if facts is None:
            continue
        checks = (
            functools.partial(_check_ks, facts, suite, validator),
            functools.partial(_check_steps_against_data, facts, suite, validator),
            functools.partial(_check_sequence_length, facts, suite, validator, memory),
            functools.partial(_check_media, index, dataset, facts, suite, validator, decode_media),
        )
        for check in checks:
            with guard():
                check()
    with guard():
        _refuse_absurd_memory(suite, validator, memory)


def _dataset_facts(index: int, dataset: dict[str, Any], validator: Validator) -> _DataFacts | None:
    from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE, unusable, usable_users
    from benchmark.formats.registry import load_raw_dataset

    name = dataset["name"]
    if dataset["format"] == "synthetic":
        # Known without generating it: one sequence per user, lengths drawn from min_len..max_len.
        options = dataset["options"]
        path = ("datasets", index, "options")
        if options["max_len"] < MIN_SEQUENCE_LENGTH:
            validator.problem(path + ("max_len",), f"max_len {options['max_len']} leaves no usable user: {RULE}")
            return None
        if options["min_len"] > options["max_len"]:
            validator.problem(
                path + ("min_len",), f"min_len {options['min_len']} is above max_len {options['max_len']}"
            )
            return None
        if options["min_len"] < MIN_SEQUENCE_LENGTH:
            validator.warn(
                path + ("min_len",),
                f"users shorter than {MIN_SEQUENCE_LENGTH} items are dropped (min_len {options['min_len']}): {RULE}",
            )
        return _DataFacts(name, options["users"], options["users"], options["items"], options["max_len"])
    try:
        raw = load_raw_dataset(build(DatasetConfig, dataset))
    except MMBenchError as error:
        validator.problem(("datasets", index), f"dataset '{name}' cannot be read: {error}")
        return None
    reason = unusable(raw.source, raw.sequences)
    if reason is not None:
        validator.problem(("datasets", index), f"dataset '{name}' is unusable: {reason}")
        return None
    usable = usable_users(raw.sequences)
    if usable < len(raw.sequences):
        validator.warn(
            ("datasets", index),
            f"dataset '{name}': {len(raw.sequences) - usable} of {len(raw.sequences)} users have fewer than "
            f"{MIN_SEQUENCE_LENGTH} items and are dropped ({RULE})",
        )
    longest = max(len(sequence) for sequence in raw.sequences)
    return _DataFacts(name, len(raw.sequences), usable, raw.n_items, longest, raw)


def _check_ks(facts: _DataFacts, suite: dict[str, Any], validator: Validator) -> None:
    for position, k in enumerate(suite["eval"]["ks"]):
        if k >= facts.items:
            validator.problem(
                ("eval", "ks", position),
                f"@{k} is not below the {facts.items} items of dataset '{facts.name}': every target would be a hit",
            )


def _check_steps_against_data(facts: _DataFacts, suite: dict[str, Any], validator: Validator) -> None:
    for value, path in _setting_values(suite, "train", "batch_size"):
        if value > facts.sequences:
            validator.problem(
                path,
                f"batch_size {value} is larger than the {facts.sequences} training sequences of dataset "
                f"'{facts.name}': every step would be warm-up, nothing measured",
            )
    for (batch, _), (epochs, _), (max_steps, _), (warmup, path) in itertools.product(
        *(_setting_values(suite, "train", key) for key in ("batch_size", "epochs", "max_steps", "warmup_steps"))
    ):
        if batch > facts.sequences or (max_steps is not None and max_steps <= warmup):
            continue  # reported above, or by _check_measured_steps
        per_epoch = -(-facts.sequences // batch)
        if per_epoch * epochs <= warmup:
            validator.problem(
                path,
                f"warmup_steps {warmup} leaves nothing to measure on dataset '{facts.name}': {per_epoch} step(s) "
                f"per epoch ({facts.sequences} training sequences, batch_size {batch}) x {epochs} epoch(s)",
            )


def _check_sequence_length(
    facts: _DataFacts, suite: dict[str, Any], validator: Validator, memory: dict[KeyPath, tuple[int, str]]
) -> None:
    """Warn where max_seq_len is far beyond the data's longest history; keep each setting's step-memory bound."""
    from benchmark.methods.registry import get_method_class
    from benchmark.modalities.registry import modality_names

    longest_history = facts.longest - 1  # the test history: every item but the last
    batches = [value for value, _ in _setting_values(suite, "train", "batch_size")]
    shapes = [value for value, _ in _setting_values(suite, "train", "step_shapes")]
    unique = [value for value, _ in _setting_values(suite, "train", "unique_items")]
    value_bytes = max(4 if p == "fp32" else 2 for p, _ in _setting_values(suite, "train", "precision"))
    evaluates = any(value for value, _ in _setting_values(suite, "eval", "enabled"))
    eval_rows = min(max(v for v, _ in _setting_values(suite, "eval", "batch_size")), facts.users) if evaluates else 0
    for max_seq_len, path in _setting_values(suite, "train", "max_seq_len"):
        if far_beyond(max_seq_len, longest_history):
            validator.warn(
                path,
                f"max_seq_len {max_seq_len} is far beyond the longest history of dataset '{facts.name}' "
                f"({longest_history} items): nearly every position is padding"
                + (
                    f", and with static step shapes every step encodes all {max(batches)} x {max_seq_len + 1} slots"
                    if "static" in shapes
                    else ""
                )
                + f"; max_seq_len {longest_history} reads every item (rows measure the max_seq_len set, unclamped)",
            )
        slots = max(
            encoded_slots(batch, max_seq_len, shape, facts.longest, unique_items, facts.items)
            for batch, shape, unique_items in itertools.product(batches, shapes, unique)
        )
        for method_index, method in enumerate(suite["methods"]):
            if validator.reported(("methods", method_index)):
                continue  # a broken entry (unknown method, bad option): reported already
            cached = get_method_class(method["name"]).uses_cache
            for tower_index, tower_set in enumerate(suite["towers"]):
                if validator.reported(("towers", tower_index)):
                    continue
                if method["towers"] and tower_set["name"] not in method["towers"]:
                    continue
                # A tower of unknown shape adds nothing: the bound stays a lower bound.
                shapes = [tower_shape(m, tower_set[m]) for m in modality_names() if tower_set.get(m)]
                towers = [shape for shape in shapes if shape is not None]
                bound = step_memory(
                    batch=max(batches),
                    eval_rows=eval_rows,
                    max_seq_len=max_seq_len,
                    slots=slots,
                    towers=towers,
                    value_bytes=value_bytes,
                    cached=cached,
                )
                explained = (
                    f"{bound.explain(max_seq_len)} (method '{method['label']}', tower set '{tower_set['name']}', "
                    f"dataset '{facts.name}', whose longest history has {longest_history} items)"
                )
                if bound.total > memory.get(path, (-1, ""))[0]:
                    memory[path] = (bound.total, explained)


def _refuse_absurd_memory(suite: dict[str, Any], validator: Validator, memory: dict[KeyPath, tuple[int, str]]) -> None:
    """A step whose lower bound exceeds the machine's whole memory cannot run: on the host the kernel's OOM killer
    ends the cell (and may take the machine's other work with it) instead of an error."""
    limits = [memory_limit(device) for device, _ in _setting_values(suite, "train", "device")]
    known = [limit for limit in limits if limit is not None]
    if not known:
        return  # device cuda on a machine without a GPU: nothing to compare with here
    limit, what = max(known)
    for path, (needed, explained) in memory.items():
        if needed > limit:
            validator.problem(
                path,
                f"max_seq_len {_value_at(suite, path)} cannot fit: {explained}, more than the "
                f"{limit / GIB:.1f} GiB of {what} here; lower max_seq_len (or batch_size)",
            )


def _value_at(suite: dict[str, Any], path: KeyPath) -> Any:
    node: Any = suite
    for key in path:
        node = node[key]
    return node


def _check_media(
    index: int,
    dataset: dict[str, Any],
    facts: _DataFacts,
    suite: dict[str, Any],
    validator: Validator,
    decode: bool,
) -> None:
    """Every media file a tower of this dataset's cells reads: present (and, with `decode`, decodable)."""
    from benchmark.data.problems import counts_by_kind
    from benchmark.modalities.media import media_modalities, media_problems
    from benchmark.modalities.registry import modality_names

    used = {m for tower_set in _used_tower_sets(suite) for m in modality_names() if tower_set.get(m)}
    for modality in media_modalities([m for m in modality_names() if m in used]):
        if facts.raw is None:  # synthetic: generated with the media its options ask for (images always)
            if modality != "image" and not dataset["options"].get(modality):
                validator.problem(
                    ("datasets", index, "options"),
                    f"synthetic dataset '{facts.name}' has no {modality}, which a tower set reads: "
                    f"set `{modality}: true` in its options",
                )
            continue
        problems = media_problems(facts.raw, modality, decode)
        if not problems:
            continue
        kinds = ", ".join(f"{kind}: {count}" for kind, count in counts_by_kind(problems).items())
        listed = "; ".join(str(problem) for problem in problems[:MEDIA_PROBLEMS_LISTED])
        hidden = len(problems) - MEDIA_PROBLEMS_LISTED
        more = f"; ... and {hidden} more" if hidden > 0 else ""
        validator.problem(
            ("datasets", index),
            f"dataset '{facts.name}': {len(problems)} of {facts.items} items' {modality} files are missing or "
            f"unreadable ({kinds}), and a tower reads every one: {listed}{more} "
            "(`mmbench data inspect` lists them all)",
        )


def _used_tower_sets(suite: dict[str, Any]) -> list[dict[str, Any]]:
    """Tower sets some method runs with (a method's `towers:` restricts it)."""
    return [
        tower_set
        for tower_set in suite["towers"]
        if any(
            not method.get("towers") or tower_set.get("name") in method["towers"] for method in suite.get("methods", [])
        )
    ]


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
