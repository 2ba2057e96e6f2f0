"""The suites shipped with mmbench (`suites/` of the checkout, `benchmark/shipped_suites` in an install): a suite
argument that is not a file is looked up among them by name, so `mmbench run smoke` works from any directory."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import yaml

from benchmark.errors import SuiteError
from benchmark.registry import closest_hint


def shipped_suites() -> dict[str, Path]:
    """Every shipped suite by name (its file name without `.yaml`)."""
    # Resolved: in a checkout the folder links to suites/, and messages then name suites/<name>.yaml.
    folder = Path(str(importlib.resources.files("benchmark") / "shipped_suites")).resolve()
    return (
        {path.stem: path for path in sorted(folder.glob("*.yaml"), key=lambda path: path.stem)}
        if folder.is_dir()
        else {}
    )


def suite_path(text: str | Path) -> Path:
    """The suite file `text` names: a path as given, else a shipped suite by name. Neither is one clear error."""
    path = Path(text)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path  # a path: reading it reports a missing file with its name
    shipped = shipped_suites()
    if path.name in shipped:
        return shipped[path.name]
    raise SuiteError(
        [
            f"{text}: no suite file by that name, and no shipped suite called '{text}' "
            f"({closest_hint(path.name, list(shipped))}shipped: {', '.join(shipped) or 'none'}; mmbench suites list)"
        ]
    )


def suite_description(path: Path) -> str:
    """A shipped suite's `description:` (empty when it has none or does not parse)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    description = data.get("description") if isinstance(data, dict) else None
    return description if isinstance(description, str) else ""
