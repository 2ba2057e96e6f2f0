"""Where generated data and hidden-state caches live (MMBENCH_CACHE, default ~/.cache/mmbench)."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.errors import MMBenchError


def cache_root(create: bool = True) -> Path:
    """The cache directory; with `create`, made if missing, and a directory that cannot be made is one clear error."""
    root = Path(os.environ.get("MMBENCH_CACHE", Path.home() / ".cache" / "mmbench"))
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise unwritable_cache(root, error) from error
    return root


def unwritable_cache(directory: Path, error: OSError) -> MMBenchError:
    """The one-line error for a cache directory that cannot be made or written."""
    return MMBenchError(
        f"cache directory {directory} cannot be created or written: {error.strerror or error} "
        "(set MMBENCH_CACHE to a writable directory)"
    )
