"""Validation of YAML data against the typed configuration (`suite/config.py`). Every problem is reported at once,
each as `file:line: key.path: message`, with a did-you-mean for unknown keys and values."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmark.suite.config import NamesOf, flattened_field, hints, unwrap_optional
from benchmark.suite.yaml_lines import KeyPath, format_path

_NO_META: dict[str, Any] = {"help": "", "minimum": None, "maximum": None, "choices": None}


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if typing.get_origin(hint) is tuple:
        return "a list"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return dataclasses.MISSING


def choices_of(cls: type) -> dict[str, tuple[Any, ...]]:
    """The fields of a dataclass that take one of a fixed set of values (`Literal[...]`)."""
    found = {}
    for name, hint in hints(cls).items():
        inner, _ = unwrap_optional(hint)
        if typing.get_origin(inner) is Literal:
            found[name] = typing.get_args(inner)
    return found


def defaults_of(cls: type) -> dict[str, Any]:
    return {item.name: _default(item) for item in dataclasses.fields(cls) if _default(item) is not dataclasses.MISSING}


@dataclass
class Validator:
    source: str
    lines: dict[KeyPath, int]
    names: NamesOf  # the registered names of a kind (benchmark.catalog.names): the valid values of a name field
    problems: list[str] = field(default_factory=list)
    # What a suite may run with but probably should not (max_seq_len far beyond the data); the same format.
    warnings: list[str] = field(default_factory=list)
    problem_paths: list[KeyPath] = field(default_factory=list)
    warning_paths: list[KeyPath] = field(default_factory=list)

    def problem(self, path: KeyPath, message: str) -> None:
        self.problem_paths.append(path)
        self.problems.append(self._located(path, message))

    def warn(self, path: KeyPath, message: str) -> None:
        located = self._located(path, message)
        if located not in self.warnings:
            self.warnings.append(located)
            self.warning_paths.append(path)

    def standing_warnings(self) -> list[str]:
        """The warnings about keys without a problem (a refused value needs no warning as well)."""
        return [text for text, path in zip(self.warnings, self.warning_paths) if not self.reported(path)]

    def reported(self, prefix: KeyPath) -> bool:
        """Whether a problem was reported at `prefix` or under it."""
        return any(path[: len(prefix)] == prefix for path in self.problem_paths)

    def _located(self, path: KeyPath, message: str) -> str:
        return f"{self.source}:{self._line(path)}: {format_path(path)}: {message}"

    def _line(self, path: KeyPath) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def section(self, value: Any, cls: type, path: KeyPath) -> dict[str, Any]:
        """Check a mapping against dataclass `cls`; return it as plain data with defaults filled in."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        field_hints = hints(cls)
        flattened = flattened_field(cls)
        known = {item.name: item for item in dataclasses.fields(cls) if item.name != "source" and item is not flattened}
        entry_names: list[str] = list(self.names(flattened.metadata["choices"])) if flattened is not None else []
        result: dict[str, Any] = {}
        for key, item in value.items():
            if key in entry_names and flattened is not None:
                if item is not None:  # `video: null` is a set without that entry
                    entry_hint = typing.get_args(field_hints[flattened.name])[1]
                    result[key] = self.value(item, entry_hint, None, path + (key,))
                continue
            if key not in known:
                names = list(known) + entry_names
                hint = difflib.get_close_matches(str(key), names, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (known keys: {', '.join(names)})"
                self.problem(path + (key,), f"unknown key{suggestion}")
                continue
            result[key] = self.value(item, field_hints[key], known[key], path + (key,))
        for key, item in known.items():
            if key in result:
                continue
            default = _default(item)
            if default is dataclasses.MISSING:
                self.problem(path + (key,), "required key is missing")
            elif dataclasses.is_dataclass(default):
                result[key] = self.section({}, type(default), path + (key,))
            else:
                result[key] = default
        return result

    def value(self, value: Any, hint: Any, item: dataclasses.Field[Any] | None, path: KeyPath) -> Any:
        meta = dict(item.metadata) if item is not None and item.metadata else _NO_META
        inner, optional = unwrap_optional(hint)
        default = _default(item) if item is not None else dataclasses.MISSING
        if value is None:
            if optional or default is None:
                return None  # an optional key whose default is "unset" (max_steps, num_workers, ...)
            self.problem(path, f"expected {_type_name(inner)}, got null")
            return value
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            return self.section(value, inner, path)
        if typing.get_origin(inner) is tuple:
            if not isinstance(value, list):
                self.problem(path, f"expected a list, got {type(value).__name__}")
                return []
            item_hint = typing.get_args(inner)[0]
            if isinstance(item_hint, type) and dataclasses.is_dataclass(item_hint):
                return [self.section(element, item_hint, path + (index,)) for index, element in enumerate(value)]
            return [self.scalar(element, item_hint, meta, path + (index,)) for index, element in enumerate(value)]
        if typing.get_origin(inner) is dict or inner is dict:
            if not isinstance(value, dict):
                self.problem(path, f"expected a mapping, got {type(value).__name__}")
                return {}
            return dict(value)
        if inner is Any:
            return value
        return self.scalar(value, inner, meta, path)

    def scalar(self, value: Any, hint: Any, meta: dict[str, Any], path: KeyPath) -> Any:
        if typing.get_origin(hint) is Literal:
            allowed = list(typing.get_args(hint))
            if value not in allowed:
                self._unknown_value(value, [str(a) for a in allowed], path)
            return value
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if hint is float and isinstance(value, str):
            # YAML 1.1 reads "1e-4" as a string; a string that is no number stays one, and the check below names it.
            with contextlib.suppress(ValueError):
                value = float(value)
        if hint in (int, float, str, bool) and (
            not isinstance(value, hint) or (hint in (int, float) and isinstance(value, bool))
        ):
            self.problem(path, f"expected {hint.__name__}, got {type(value).__name__} {value!r}")
            return value
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(path, f"must be a finite number, got {value}")
        minimum = meta.get("minimum")
        if minimum is not None and isinstance(value, (int, float)) and value < minimum:
            self.problem(path, f"must be >= {minimum}, got {value}")
        maximum = meta.get("maximum")
        if maximum is not None and isinstance(value, (int, float)) and value > maximum:
            self.problem(path, f"must be <= {maximum}, got {value}")
        if meta.get("choices") is not None:
            choices = list(self.names(meta["choices"]))
            if value not in choices:
                self._unknown_value(value, choices, path)
        return value

    def _unknown_value(self, value: Any, choices: list[str], path: KeyPath) -> None:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        suggestion = f"did you mean '{hint[0]}'? " if hint else ""
        self.problem(path, f"unknown value '{value}' ({suggestion}choices: {', '.join(choices)})")
