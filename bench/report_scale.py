"""`make bench-report`: how long `report` (table, json) and `compare` take on stores of 1,000, 10,000 and
100,000 synthetic rows (a few corrupt files among them), one file per cell and compacted.

Times are wall clock of the whole command as a user runs it (`python -m benchmark ...`: start-up and imports
included), the median of `--repeat` runs. Run it alone: on a shared machine the figures say nothing.

    python -m bench.report_scale [--sizes 1000,10000,100000] [--root DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmark.results.synthetic_store import CELLS_PER_RUN, write_store

COMMANDS = {
    "report table": ["report", "--results", "{store}"],
    "report json": ["report", "--results", "{store}", "--format", "json"],
    "compare": ["compare", "{store}", "{store}"],
}


def _write_part(arguments: tuple[Path, int, int]) -> None:
    root, count, start = arguments
    write_store(root, count, corrupt=0, seed=start, start=start)


def build_store(root: Path, rows: int) -> Path:
    """The store of `rows` rows under root/<rows>/per-cell (reused when already complete)."""
    store = root / str(rows) / "per-cell"
    done = store / ".complete"
    if done.exists():
        return store
    shutil.rmtree(store, ignore_errors=True)
    # Writing 100,000 one-row files takes minutes: two processes write halves of the runs.
    parts = 2 if rows >= 4 * CELLS_PER_RUN else 1
    share = rows // parts
    with ProcessPoolExecutor(parts) as pool:
        list(pool.map(_write_part, [(store / f"part{index}", share, index * share) for index in range(parts)]))
    write_store(store / "corrupt", 0, corrupt=3)
    done.touch()
    return store


def compacted_copy(store: Path) -> Path:
    target = store.parent / "compacted"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(store, target)
        subprocess.run(
            [sys.executable, "-m", "benchmark", "results", "compact", "--results", str(target)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (target / ".complete").touch()
    return target


def time_command(arguments: list[str], repeat: int, limit_s: float) -> str:
    """The median wall time of `repeat` runs, or how long it ran before `limit_s` cut it."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            subprocess.run(
                [sys.executable, "-m", "benchmark", *arguments],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
                timeout=limit_s,
            )
        except subprocess.TimeoutExpired:
            return f">{limit_s:.0f}s"
        samples.append(time.perf_counter() - started)
    return f"{statistics.median(samples):.2f}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--root", type=Path, default=Path("/tmp/mmbench-bench-report"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=float, default=180.0, help="seconds after which a command is cut")
    options = parser.parse_args(argv)
    header = f"{'rows':>8}  {'layout':<9}" + "".join(f"{name:>14}" for name in COMMANDS)
    print(header)
    for rows in (int(size) for size in options.sizes.split(",")):
        started = time.perf_counter()
        store = build_store(options.root, rows)
        compacted = compacted_copy(store)
        print(f"# {rows} rows: store ready in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        for layout, path in (("per-cell", store), ("compacted", compacted)):
            times = [
                time_command([part.format(store=path) for part in command], options.repeat, options.limit)
                for command in COMMANDS.values()
            ]
            print(f"{rows:>8}  {layout:<9}" + "".join(f"{text:>14}" for text in times), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
