"""Where generated data and hidden-state caches live (MMBENCH_CACHE, default ~/.cache/mmbench)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("MMBENCH_CACHE", Path.home() / ".cache" / "mmbench"))
    root.mkdir(parents=True, exist_ok=True)
    return root
