"""Writes that readers see whole or not at all: a file or a directory is written under a temporary name beside
its target and renamed into place only when complete. A killed writer leaves no partial target.

Renamed files and directories get the modes the user's umask asks for: `tempfile` creates 0600 files and 0700
directories, and a group sharing a results or cache directory could not read them otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def honour_umask(path: Path) -> None:
    """Give a file 0666, a directory (and everything in it) 0777, both less the umask."""
    mask = _current_umask()
    if path.is_dir():
        for root, _directories, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                if not os.path.islink(os.path.join(root, name)):
                    os.chmod(os.path.join(root, name), 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, it replaces `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        honour_umask(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


@contextlib.contextmanager
def atomic_directory(target: Path, replace: bool = False, prefix: str = ".staging-") -> Iterator[Path]:
    """Yield an empty staging directory beside `target`; when the block succeeds, it becomes `target`.

    An existing `target` is replaced only with `replace`; otherwise a target that another writer completed
    first stays (the callers that allow this write identical content).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield staging
        honour_umask(staging)
        if replace and target.exists():
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            if replace or not target.exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
