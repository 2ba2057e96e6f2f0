"""`mmbench cache build`: find or build the hidden-state caches of a suite's cached cells, with a progress bar."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmark.errors import CellSkipped
from benchmark.progress import BarRenderer
from benchmark.suite.config import to_plain
from benchmark.suite.matrix import Cell


def build_suite_caches(cells: list[Cell], console: Console) -> list[dict[str, Any]]:
    """One entry per cache: the cell it serves, 'built' or 'found', its directory, size and build time."""
    from benchmark.train.hidden_state_build import ensure_cell_caches

    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        renderer = BarRenderer(progress, progress.add_task("caches", total=None))

        for cell in cells:
            config = cell.config
            if not cell.uses_cache:
                continue
            # Cells differing only in training settings share caches: build once per distinct input.
            identity = json.dumps(
                to_plain(
                    [
                        config.dataset,
                        config.towers,
                        config.method.options,
                        config.method.base_precision,
                        config.train.precision,
                        config.seed,
                    ]
                ),
                sort_keys=True,
            )
            if identity in seen:
                continue
            seen.add(identity)
            try:
                caches = ensure_cell_caches(config, renderer.show)
            except CellSkipped as skipped:  # a quantized base on a machine without a CUDA GPU: the cell skips too
                entries.append({"cell_id": cell.cell_id, "modality": None, "status": "skipped", "reason": str(skipped)})
                continue
            for modality, (cache, built) in caches.items():
                entries.append(
                    {
                        "cell_id": cell.cell_id,
                        "modality": modality,
                        "status": "built" if built else "found",
                        "directory": str(cache.directory),
                        "bytes": cache.size_bytes,
                        "build_seconds": cache.build_seconds,
                    }
                )
    return entries
