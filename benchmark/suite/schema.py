"""The suite format: every key, its type, default and meaning. Validation reports every problem at once."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmark.suite.yaml_lines import KeyPath, format_path


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...] | str  # a Python type, or "section"/"list"/"dict"/"any"
    default: Any = None
    required: bool = False
    choices: Callable[[], list[str]] | tuple[str, ...] | None = None
    minimum: float | None = None
    section: dict[str, "Field"] | None = None  # for kind == "section"
    item: "Field | None" = None  # for kind == "list"
    help: str = ""


def _method_names() -> list[str]:
    from benchmark.methods.registry import method_names

    return method_names()


def _tower_presets() -> list[str]:
    from benchmark.models.presets_registry import preset_names

    return preset_names()


def _dataset_formats() -> list[str]:
    from benchmark.data.formats import format_names

    return format_names()


PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

TOWER = {
    "preset": Field(str, required=True, choices=_tower_presets, help="shipped architecture config"),
    "weights": Field(str, default="random", help="'random' (architecture only, offline) or a local directory of a pretrained checkpoint"),
    "max_tokens": Field(int, default=30, minimum=2, help="text length in tokens (text towers)"),
    "image_size": Field(int, default=None, minimum=8, help="image/frame side in pixels (image and video towers); default from the preset"),
}

TOWER_SET = {
    "name": Field(str, required=True, help="label used in cell ids and reports"),
    "text": Field("section", section=TOWER),
    "image": Field("section", section=TOWER),
    "video": Field("section", section=TOWER),
    "audio": Field("section", section=TOWER),
}

DATASET = {
    "name": Field(str, required=True, help="label used in cell ids and reports"),
    "format": Field(str, default="synthetic", choices=_dataset_formats),
    "path": Field(str, default=None, help="dataset directory (real formats); synthetic data is generated under the cache"),
    "encoding": Field(str, default="utf-8", help="text encoding of the dataset's files (e.g. latin-1); bad bytes are reported with file, line and offset"),
    "options": Field(dict, default={}, help="format options, e.g. synthetic users/items/clusters"),
}

METHOD = {
    "name": Field(str, required=True, choices=_method_names),
    "label": Field(str, default=None, help="name shown in reports; needed when a method appears twice"),
    "options": Field(dict, default={}, help="method hyper-parameters (see `mmbench list methods`)"),
    "towers": Field("list", default=[], item=Field(str), help="run only with these tower sets (default: all)"),
}

TRAIN = {
    "batch_size": Field(int, default=32, minimum=1, help="sequences per optimizer step"),
    "max_seq_len": Field(int, default=10, minimum=1, help="history items per sequence (plus one target)"),
    "epochs": Field(int, default=1, minimum=1),
    "max_steps": Field(int, default=None, minimum=1, help="stop after this many steps; epoch time is then estimated"),
    "warmup_steps": Field(int, default=3, minimum=0, help="steps run before timing starts (excluded, recorded)"),
    "lr": Field(float, default=1e-4, minimum=0),
    "weight_decay": Field(float, default=0.01, minimum=0),
    "precision": Field(str, default="fp32", choices=PRECISIONS),
    "device": Field(str, default="auto", choices=DEVICES),
    "unique_items": Field(bool, default=False, help="encode each distinct item of a batch once (the IISAN paper encodes every position)"),
    "logq_correction": Field(bool, default=False, help="subtract log item popularity from in-batch logits"),
    "user_layers": Field(int, default=2, minimum=1),
    "user_heads": Field(int, default=2, minimum=1),
    "embed_dim": Field(int, default=64, minimum=1),
    "dropout": Field(float, default=0.1, minimum=0),
    "nvml_hz": Field(float, default=200.0, minimum=1, help="NVML sampling rate"),
    "num_workers": Field(int, default=None, minimum=0,
                         help="DataLoader worker processes preparing batches (default: 0 on a CPU, where workers would take "
                              "the cores training times; min(4, cores - 1) on a GPU)"),
}

EVAL = {
    "enabled": Field(bool, default=True),
    "every": Field(int, default=1, minimum=1, help="validate every this many epochs (and after the last)"),
    "patience": Field(int, default=0, minimum=0, help="stop after this many validations without a better NDCG@10 (0: never stop early)"),
    "baselines": Field(bool, default=True, help="also rank with popularity and random scores"),
    "ks": Field("list", default=[5, 10, 20], item=Field(int, minimum=1)),
    "batch_size": Field(int, default=256, minimum=1, help="users scored at once"),
    "item_batch_size": Field(int, default=256, minimum=1, help="items encoded at once"),
}

RUN = {
    "timeout_s": Field(float, default=3600.0, minimum=1, help="a cell running longer is killed and recorded as timeout"),
}

SUITE = {
    "name": Field(str, required=True),
    "description": Field(str, default=""),
    "datasets": Field("list", required=True, item=Field("section", section=DATASET)),
    "towers": Field("list", required=True, item=Field("section", section=TOWER_SET)),
    "methods": Field("list", required=True, item=Field("section", section=METHOD)),
    "train": Field("section", section=TRAIN),
    "eval": Field("section", section=EVAL),
    "matrix": Field(dict, default={}, help="dotted key -> list of values, e.g. train.batch_size: [16, 32]"),
    "seeds": Field("list", default=[0], item=Field(int)),
    "repeats": Field(int, default=1, minimum=1, help="run every cell this many times, each in a fresh process (spread)"),
    "run": Field("section", section=RUN),
    "allow_download": Field(bool, default=False),
}


@dataclass
class Validator:
    source: str
    lines: dict[KeyPath, int]
    problems: list[str] = field(default_factory=list)

    def problem(self, path: KeyPath, message: str) -> None:
        line = self._line(path)
        self.problems.append(f"{self.source}:{line}: {format_path(path)}: {message}")

    def _line(self, path: KeyPath) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def section(self, value: Any, spec: dict[str, Field], path: KeyPath) -> dict[str, Any]:
        """Check a mapping against `spec`; return it with defaults filled in."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        result: dict[str, Any] = {}
        for key, item in value.items():
            if key not in spec:
                hint = difflib.get_close_matches(str(key), list(spec), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (known keys: {', '.join(spec)})"
                self.problem(path + (key,), f"unknown key{suggestion}")
                continue
            result[key] = self.value(item, spec[key], path + (key,))
        for key, item_spec in spec.items():
            if key in result:
                continue
            if item_spec.required:
                self.problem(path + (key,), "required key is missing")
            elif item_spec.kind == "section":
                result[key] = self.section({}, item_spec.section or {}, path + (key,)) if key in ("train", "eval", "run") else None
            else:
                result[key] = _copy(item_spec.default)
        return result

    def value(self, value: Any, spec: Field, path: KeyPath) -> Any:
        if spec.kind == "section":
            return self.section(value, spec.section or {}, path)
        if spec.kind == "list":
            if not isinstance(value, list):
                self.problem(path, f"expected a list, got {type(value).__name__}")
                return []
            return [self.value(item, spec.item or Field("any"), path + (index,)) for index, item in enumerate(value)]
        if spec.kind == "any":
            return value
        if value is None and not spec.required and spec.default is None:
            return None  # an optional key whose default is "unset" (max_steps, num_workers, ...)
        expected = spec.kind
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is float and isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" as a string
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool)):
            name = expected.__name__ if isinstance(expected, type) else str(expected)
            self.problem(path, f"expected {name}, got {type(value).__name__} {value!r}")
            return value
        if spec.minimum is not None and isinstance(value, (int, float)) and value < spec.minimum:
            self.problem(path, f"must be >= {spec.minimum}, got {value}")
        if spec.choices is not None:
            choices = list(spec.choices() if callable(spec.choices) else spec.choices)
            if value not in choices:
                hint = difflib.get_close_matches(str(value), choices, n=1)
                suggestion = f"did you mean '{hint[0]}'? " if hint else ""
                self.problem(path, f"unknown value '{value}' ({suggestion}choices: {', '.join(choices)})")
        return value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
