"""Entry point of the cache-build subprocess that runs before a cached cell.

Usage: python -m benchmark.launch.cache_build_main CELL_JSON
The build runs in its own process so that the training cell's CUDA context never holds the towers'
kernels, weights or cuBLAS workspace: the cell's peak memory is training's alone. Progress goes to
stdout as JSON lines; the last line says which caches were built now.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from benchmark.errors import CellSkipped
from benchmark.launch.cell_main import emit, failure_status
from benchmark.launch.child import EXIT_STOPPED, CellStopped, stop_with_parent
from benchmark.progress import done
from benchmark.suite.config import CellConfig


def main(argv: list[str]) -> int:
    try:
        stop_with_parent()
        from benchmark.methods.registry import method_options  # imports torch: after the parent-death signal is armed

        config = CellConfig.from_dict(json.loads(Path(argv[0]).read_text()), method_options)
        from benchmark.train.hidden_state_build import ensure_cell_caches

        caches = ensure_cell_caches(config, emit)
    except CellStopped as stopped:  # the build's staging directory was removed on the way out
        print(f"cache build stopped: {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    except CellSkipped as skipped:  # the launcher writes the cell's skipped row with the reason
        print(f"cache build skipped: {skipped}", file=sys.stderr)
        emit(done("skipped", str(skipped)))
        return 0
    except BaseException as error:  # noqa: BLE001 - the launcher records the failure on the cell's row
        traceback.print_exc(file=sys.stderr)
        status = failure_status(error)
        emit(done(status, f"cache build failed: {type(error).__name__}: {error}"))
        return 3 if status == "oom" else 2
    emit(done("ok", built=tuple(cache.digest for cache, built in caches.values() if built)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
