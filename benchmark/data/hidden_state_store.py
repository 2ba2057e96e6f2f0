"""The hidden-state cache: kept CLS states of every item, computed once by a frozen tower.

One memory-mapped fp16 file per key (tower weights identity, dataset fingerprint, kept layer
indices, text length / image size, compute precision), with a manifest beside it. A build
writes into a staging directory and renames it into place only when complete, so a killed
build leaves nothing that a reader would use; stale staging directories are removed by the
next build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.atomic import atomic_directory
from benchmark.data.cache_root import cache_root, unwritable_cache

STATES_FILE = "states.npy"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CacheKey:
    tower_identity: str
    dataset_fingerprint: str
    layer_indices: tuple[int, ...]
    input_shape: str  # "tokens=30" or "pixels=224"
    precision: str
    pooling: str = "cls"

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "tower": self.tower_identity,
            "dataset": self.dataset_fingerprint,
            "layers": list(self.layer_indices),
            "input": self.input_shape,
            "precision": self.precision,
            "pooling": self.pooling,
        }

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class HiddenStateCache:
    directory: Path
    manifest: dict[str, Any]

    @property
    def states_path(self) -> Path:
        return self.directory / STATES_FILE

    def open_states(self) -> torch.Tensor:
        """[n_items + 1, layers, hidden] fp16, memory-mapped (copy-on-write: the file is never modified)."""
        return torch.from_numpy(np.load(self.states_path, mmap_mode="c"))

    @property
    def build_seconds(self) -> float:
        return float(self.manifest["build_seconds"])

    @property
    def size_bytes(self) -> int:
        return self.states_path.stat().st_size

    @property
    def digest(self) -> str:
        return self.directory.name

    @property
    def built_on(self) -> dict[str, Any] | None:
        """The hardware the build ran on (None for caches built before mmbench recorded it)."""
        return self.manifest.get("built_on")


def caches_directory() -> Path:
    return cache_root() / "hidden-states"


def find_cache(key: CacheKey) -> HiddenStateCache | None:
    directory = caches_directory() / key.digest
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file() or not (directory / STATES_FILE).is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("key") != key.as_dict():  # a digest collision or an older format: not ours
        return None
    return HiddenStateCache(directory, manifest)


def _remove_stale_staging(parent: Path, max_age_s: float = 0.0) -> None:
    now = time.time()
    for staging in parent.glob(".staging-*"):
        if now - staging.stat().st_mtime >= max_age_s:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def building(key: CacheKey) -> Iterator[None]:
    """Hold the build lock of one cache: concurrent builders of the same cache (pool workers, array tasks,
    two runs) wait for the first, then find its cache instead of building it again."""
    from filelock import FileLock

    parent = caches_directory()
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unwritable_cache(parent, error) from error
    with FileLock(str(parent / f".{key.digest}.lock")):
        yield


def build_cache(
    key: CacheKey,
    n_items: int,
    layers: int,
    hidden: int,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    progress: Callable[[int], None] | None = None,
    built_on: dict[str, Any] | None = None,
) -> HiddenStateCache:
    """Write the cache from `batches` of (item ids, states [n, layers, hidden]); return it once complete.

    `batches` must cover item ids 1..n_items; row 0 (padding) stays zero. `built_on` names the hardware
    that paid `build_seconds`, so a row elsewhere knows not to count that time as its own.
    """
    parent = caches_directory()
    target = parent / key.digest
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unwritable_cache(parent, error) from error
    # Staging left by a build that was killed an hour or more ago is garbage; a younger one may be live.
    _remove_stale_staging(parent, max_age_s=3600.0)
    started = time.perf_counter()
    # An incomplete or mismatched cache under this digest is replaced.
    with atomic_directory(target, replace=True) as staging:
        states = np.lib.format.open_memmap(
            staging / STATES_FILE, mode="w+", dtype=np.float16, shape=(n_items + 1, layers, hidden)
        )
        states[0] = 0
        written = np.zeros(n_items + 1, dtype=bool)
        written[0] = True
        for item_ids, batch_states in batches:
            ids = item_ids.numpy()
            states[ids] = batch_states.to(torch.float16).cpu().numpy()
            written[ids] = True
            if progress is not None:
                progress(len(ids))
        if not written.all():
            raise RuntimeError(f"cache build covered {int(written.sum()) - 1} of {n_items} items")
        states.flush()
        del states
        manifest = {
            "key": key.as_dict(),
            "n_items": n_items,
            "layers": layers,
            "hidden": hidden,
            "dtype": "float16",
            "build_seconds": time.perf_counter() - started,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "built_on": built_on,
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return HiddenStateCache(target, manifest)


def list_caches() -> list[dict[str, Any]]:
    """Every cache under the cache root (reading only: a read-only or missing root lists nothing, creates nothing)."""
    entries = []
    for manifest_path in sorted((cache_root(create=False) / "hidden-states").glob("*/" + MANIFEST_FILE)):
        manifest = json.loads(manifest_path.read_text())
        states = manifest_path.parent / STATES_FILE
        entries.append(
            {
                "digest": manifest_path.parent.name,
                **manifest["key"],
                "n_items": manifest["n_items"],
                "bytes": states.stat().st_size if states.exists() else None,
                "build_seconds": manifest["build_seconds"],
            }
        )
    return entries
