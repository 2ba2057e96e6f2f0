"""One timed cell per device at a time, across every mmbench run on the machine.

Two runs timing cells on one device at once inflate each other's step times (28x was seen on a
2-core machine); the lock makes the second run wait. The lock files live in a machine-wide
directory (MMBENCH_LOCK_DIR, default <tmp>/mmbench-locks), not in the per-user cache.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from benchmark.suite.config import CellConfig


def lock_directory() -> Path:
    if os.environ.get("MMBENCH_LOCK_DIR"):
        directory = Path(os.environ["MMBENCH_LOCK_DIR"])
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    directory = Path(tempfile.gettempdir()) / "mmbench-locks"
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # Shared by every user's runs on the machine, like /tmp itself: world-writable with the sticky bit.
        if hasattr(os, "getuid") and directory.stat().st_uid == os.getuid():
            os.chmod(directory, 0o1777)
    return directory


def device_keys(config: CellConfig) -> list[str]:
    """The devices a cell will time on: ['cpu'], or 'cuda-<visible device>' (an index or a GPU/MIG UUID) for the
    first visible device, or for the first N of a distributed cell's N ranks."""
    requested = config.train.device
    if requested == "cpu":
        return ["cpu"]
    if requested == "auto":
        import torch

        if not torch.cuda.is_available():
            return ["cpu"]
    from benchmark.launch.devices import lock_name

    visible = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    ranks = config.train.ranks
    visible = visible or [str(index) for index in range(ranks)]
    return [lock_name(device) for device in visible[:ranks]]


@contextlib.contextmanager
def device_locks(keys: list[str], on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold every device's lock (in one order, the same in every run, so two runs never hold one each and wait)."""
    with contextlib.ExitStack() as held:
        for key in sorted(set(keys)):
            held.enter_context(device_lock(key, on_wait))
        yield


@contextlib.contextmanager
def device_lock(key: str, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the device's lock; if another run holds it, say so once and wait."""
    path = lock_directory() / f"{key}.lock"
    lock = FileLock(str(path), mode=0o666)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        on_wait(f"waiting for device '{key}': another mmbench run is timing a cell on it (lock {path})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
