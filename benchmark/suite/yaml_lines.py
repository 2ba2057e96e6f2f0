"""Load YAML keeping the line of every key, so validation errors can say file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import SuiteError

KeyPath = tuple[Any, ...]


def _construct(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                raise SuiteError(
                    [f"{source}:{key_node.start_mark.line + 1}: {format_path(path + (key,))}: duplicate key"]
                )
            result[key] = _construct(value_node, path + (key,), lines, source)
            # A key's own line is more useful than its value's (a nested block starts on the next line).
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, path + (index,), lines, source) for index, child in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    """Construct a node with the safe loader's rules (ints, floats, bools, nulls), from the tag compose resolved."""
    constructed = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    # An unhashable key (a mapping or list used as a key) would fail later as a TypeError: make it text here.
    return constructed if isinstance(constructed, (str, int, float, bool, type(None))) else str(constructed)


def format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse `path`; return the data and a map from key path to 1-based line number."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SuiteError([f"{source}: cannot read suite file: {error.strerror or error}"]) from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SuiteError(
            [f"{source}:{line}: byte {error.start}: not valid UTF-8 ({error.reason}); save the suite as UTF-8"]
        ) from error
    lines: dict[KeyPath, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise SuiteError([f"{source}:1: the suite file is empty"])
        data = _construct(node, (), lines, source)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SuiteError([f"{where}: malformed YAML: {error.problem or error}"]) from error
    except (yaml.YAMLError, ValueError, TypeError) as error:  # e.g. a character YAML does not accept
        raise SuiteError([f"{source}: malformed YAML: {error}"]) from error
    return data, lines
