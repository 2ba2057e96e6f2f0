"""Predictions kept between runs: a cell predicted once (by `run --dry-run`, `run`, a resumed run) is not simulated
again while nothing it depends on has changed.

The key is everything a prediction depends on: the cell's work (its config hash), whether its data is read or
predicted and, for data on disk, the sizes and times of its files, the device and the calibration it is priced
with, and the code that simulates it (the estimate package's source, torch, transformers and peft). A key that
cannot be made (an unreadable dataset directory) means no caching, never a stale figure.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.atomic import atomic_file
from benchmark.data.cache_root import cache_root
from benchmark.estimate.calibration import Calibration
from benchmark.estimate.cell_data import can_read
from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import config_hash

LIBRARIES = ("torch", "transformers", "peft")


def _code_identity() -> str:
    digest = hashlib.sha256(__version__.encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    for library in LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=none".encode())
    return digest.hexdigest()


def _data_identity(config: CellConfig) -> Any:
    dataset = config.dataset
    readable = can_read(dataset)
    if dataset.path is None:
        return readable
    directory = Path(dataset.path)
    files = sorted(directory.rglob("*")) if directory.is_dir() else [directory]
    return [readable, [(str(path.relative_to(directory)), path.stat().st_size, path.stat().st_mtime_ns)
                       for path in files if path.is_file()]]  # fmt: skip


def prediction_key(config: CellConfig, device_label: str, calibration: Calibration) -> str | None:
    try:
        data = _data_identity(config)
    except OSError:
        return None
    device = calibration.for_device(device_label)
    body = [config_hash(config), data, device_label, repr(device), calibration.source, _code_identity()]
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _path(key: str) -> Path:
    return cache_root() / "estimates" / f"{key}.json"


def cached_prediction(key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    try:
        found = json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def keep_prediction(key: str | None, columns: dict[str, Any]) -> None:
    """Keep `columns` under `key` (best effort: a cache that cannot be written only costs the next run time)."""
    if key is None:
        return
    path = _path(key)
    try:
        with atomic_file(path) as staging:
            staging.write_text(json.dumps(columns))
    except OSError as error:
        print(f"note: could not keep the prediction in {path}: {error}", file=sys.stderr)
