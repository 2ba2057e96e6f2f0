"""Predictions kept between runs: a cell predicted once (by `run --dry-run`, `run`, a resumed run) is not simulated
again while nothing it depends on has changed.

The key is everything a prediction depends on: the cell's work (its config hash, repeats alike), whether its data is
read or predicted and, for data on disk, the sizes and times of its files, a checkpoint tower's config, the device
(its name, memory and, for a CPU, the threads torch uses) and the calibration it is priced with, and the code that
simulates it (the package's whole source, the plug-ins named, torch, transformers and peft). A key that cannot be
made (an unreadable dataset directory) means no caching, never a stale figure.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmark import __version__
from benchmark.atomic import atomic_file
from benchmark.data.cache_root import cache_root
from benchmark.errors import MMBenchError
from benchmark.estimate.calibration import Calibration
from benchmark.estimate.cell_data import can_read
from benchmark.estimate.devices import DeviceSpec
from benchmark.models.hub import checkpoint_directory
from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import config_hash

LIBRARIES = ("torch", "transformers", "peft")


@functools.cache
def _code_identity() -> str:
    """The code a prediction comes from: every source file of the package (the towers, methods, loader and
    trainer pieces the simulation builds, not only the estimator), the plug-ins named, and the libraries."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent.parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    digest.update(os.environ.get("MMBENCH_PLUGINS", "").encode())
    for library in LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=none".encode())
    return digest.hexdigest()


def _files(directory: Path) -> list[tuple[str, int, int]]:
    files = sorted(directory.rglob("*")) if directory.is_dir() else [directory]
    return [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files if path.is_file()]


def _data_identity(config: CellConfig) -> Any:
    dataset = config.dataset
    readable = can_read(dataset)
    return [readable, _files(Path(dataset.path))] if dataset.path is not None else readable


def _tower_identity(config: CellConfig) -> list[Any]:
    """What a tower's architecture comes from where it is not a shipped preset: its checkpoint's config."""
    found = []
    for modality, tower in sorted(config.towers.by_modality.items()):
        if tower.weights == "random":
            continue
        directory = checkpoint_directory(tower.weights, tower.revision)
        config_file = directory / "config.json" if directory is not None else None
        found.append([modality, config_file.read_text() if config_file is not None and config_file.is_file() else None])
    return found


def prediction_key(config: CellConfig, device: DeviceSpec, calibration: Calibration) -> str | None:
    """The key of `config`'s prediction on `device` with `calibration`; None where one cannot be made (then the
    cell is simulated, never given a stale figure)."""
    try:
        data, towers = _data_identity(config), _tower_identity(config)
    except (OSError, MMBenchError):
        return None
    body = [
        config_hash(config.replace(repeat=0)),  # repeats are the same work
        data,
        towers,
        [device.label, device.kind, device.memory_bytes, torch.get_num_threads() if device.kind == "cpu" else None],
        repr(calibration.for_device(device.label)),
        calibration.source,
        _code_identity(),
    ]
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
