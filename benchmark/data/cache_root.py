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
            raise MMBenchError(
                f"cache directory {root} cannot be created: {error.strerror or error} "
                "(set MMBENCH_CACHE to a writable directory)"
            ) from error
    return root
