"""The checks a suite's datasets decide: cut-offs against item counts, steps and batches against training
sequences, max_seq_len against the longest sequence and the memory its step needs, and the media files the towers
read."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmark.data.problems import counts_by_kind
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE, unusable, usable_users
from benchmark.errors import MMBenchError
from benchmark.formats.registry import PredictedData, get_format, load_raw_dataset
from benchmark.methods.registry import get_method_class
from benchmark.modalities.registry import get_modality, modality_names
from benchmark.plan.entry_checks import setting_values, unless_broken
from benchmark.plan.feasibility import (
    GIB,
    encoded_slots,
    far_beyond,
    memory_limit,
    step_memory,
    tower_shape,
)
from benchmark.suite.config import (
    DatasetConfig,
    build,
)
from benchmark.suite.schema import Validator
from benchmark.suite.yaml_lines import KeyPath

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset


# Media problems a validate line names before "... and N more" (`data inspect` lists every one).
MEDIA_PROBLEMS_LISTED = 3


@dataclass(frozen=True)
class _DataFacts:
    """What the data checks need to know about one dataset (read once, or known from a generated format's options)."""

    name: str
    users: int
    sequences: int  # training sequences: one per user of MIN_SEQUENCE_LENGTH items or more
    items: int
    longest: int  # items in the longest user sequence
    raw: RawDataset | None = None  # a real dataset as read (media checks); None for generated data
    predicted: PredictedData | None = None  # generated data, as its options decide it


def check_against_data(suite: dict[str, Any], validator: Validator, decode_media: bool) -> None:
    """Everything a dataset decides about its cells: a cut-off K at or beyond the item count makes HR@K trivially
    1; a batch larger than the training set, or fewer steps than warm-up, measures nothing; max_seq_len far beyond
    the longest sequence is padding, and one whose step cannot fit in memory kills the machine; a media file a tower
    reads must exist (and, with `decode_media`, decode)."""
    guard = functools.partial(unless_broken, bool(validator.problems))
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

    name = dataset["name"]
    data_format = get_format(dataset["format"])
    if data_format.predict is not None:  # a generated format: known without generating it
        predicted = data_format.predict({**data_format.options, **dataset["options"]})
        path = ("datasets", index, "options")
        for option, message in predicted.problems:
            validator.problem(path + (option,), message)
        for option, message in predicted.warnings:
            validator.warn(path + (option,), message)
        if predicted.problems:
            return None
        return _DataFacts(name, predicted.users, predicted.users, predicted.items, predicted.longest, None, predicted)
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
    for value, path in setting_values(suite, "train", "batch_size"):
        if value >= 1 and value > facts.sequences:
            validator.problem(
                path,
                f"batch_size {value} is larger than the {facts.sequences} training sequences of dataset "
                f"'{facts.name}': every step would be warm-up, nothing measured",
            )
    for (batch, _), (epochs, _), (max_steps, _), (warmup, path) in itertools.product(
        *(setting_values(suite, "train", key) for key in ("batch_size", "epochs", "max_steps", "warmup_steps"))
    ):
        if batch < 1 or epochs < 1 or warmup < 0:
            continue  # out of range: the schema reported it, and there is nothing to count steps with
        if batch > facts.sequences or (max_steps is not None and max_steps <= warmup):
            continue  # reported above, or by check_measured_steps
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

    longest_history = facts.longest - 1  # the test history: every item but the last
    batches = [value for value, _ in setting_values(suite, "train", "batch_size")]
    shapes = [value for value, _ in setting_values(suite, "train", "step_shapes")]
    unique = [value for value, _ in setting_values(suite, "train", "unique_items")]
    value_bytes = max(4 if p == "fp32" else 2 for p, _ in setting_values(suite, "train", "precision"))
    evaluates = any(value for value, _ in setting_values(suite, "eval", "enabled"))
    eval_rows = min(max(v for v, _ in setting_values(suite, "eval", "batch_size")), facts.users) if evaluates else 0
    for max_seq_len, path in setting_values(suite, "train", "max_seq_len"):
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
    limits = [memory_limit(device) for device, _ in setting_values(suite, "train", "device")]
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

    used = {m for tower_set in _used_tower_sets(suite) for m in modality_names() if tower_set.get(m)}
    for modality in [m for m in modality_names() if m in used and get_modality(m).item_files]:
        if facts.predicted is not None:  # generated with the media its options ask for
            if modality not in facts.predicted.media:
                validator.problem(
                    ("datasets", index, "options"),
                    f"{dataset['format']} dataset '{facts.name}' has no {modality}, which a tower set reads: "
                    + facts.predicted.missing_media_hint.format(modality=modality),
                )
            continue
        if facts.raw is None:
            continue
        problems = get_modality(modality).media_problems(facts.raw, decode)
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
