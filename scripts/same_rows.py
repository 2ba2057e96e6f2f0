"""Do two result stores hold the same rows, apart from what is measured anew on every run? A refactor that leaves
behaviour unchanged passes: `make rows-equal BASE=<rev>` runs the smoke suite on <rev> and on the working tree
and calls this on the two stores.

Compared: every column except timings, timestamps, ids, host readings (memory, energy, contention, CPU load),
paths and versions of the code itself; rows are matched by cell id. Exit 0: equal; 1: a difference (listed)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import polars as pl

# Measured anew on every run, or naming this run or this checkout: by unit suffix, then by name.
VARYING_SUFFIXES = ("_ms", "_s", "_s_samples", "_gib", "_time", "_per_s", "_measured")
VARYING_PARTS = (
    "run_id", "energy", "contention", "busy", "tflops", "mfu", "data_wait", "data_share", "step_ms",
    "train_s_curve", "load_avg", "git_", "mmbench_version", "python_version", "_slack", "peak_bytes",
    "cuda_context",
)  # fmt: skip
# Measured, though not named like it: what a run says of its machine and its moment.
VARYING_EXACT = ("warnings", "error", "host", "other_gpu_processes")


def _varying(column: str) -> bool:
    return column in VARYING_EXACT or column.endswith(VARYING_SUFFIXES) or any(part in column for part in VARYING_PARTS)


def _rows(store: Path) -> pl.DataFrame:
    files = sorted(path for path in store.rglob("*.parquet"))
    if not files:
        raise SystemExit(f"{store}: no Parquet files")
    return pl.concat([pl.read_parquet(path) for path in files], how="diagonal_relaxed").sort("cell_id")


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    return left == right


def main(base_store: str, head_store: str) -> int:
    base, head = _rows(Path(base_store)), _rows(Path(head_store))
    compared = [c for c in base.columns if c in head.columns and not _varying(c)]
    differences = [f"only in {base_store}: {c}" for c in base.columns if c not in head.columns]
    differences += [f"only in {head_store}: {c}" for c in head.columns if c not in base.columns]
    if base["cell_id"].to_list() != head["cell_id"].to_list():
        differences.append(f"cells differ: {base['cell_id'].to_list()} vs {head['cell_id'].to_list()}")
    else:
        pairs = zip(base.select(compared).iter_rows(named=True), head.select(compared).iter_rows(named=True))
        for left, right in pairs:
            differences += [
                f"{left['cell_id']}: {column}: {left[column]!r} vs {right[column]!r}"
                for column in compared
                if not _same(left[column], right[column])
            ]
    skipped = sorted(set(base.columns) - set(compared))
    print(f"{len(base)} rows, {len(compared)} columns compared, {len(skipped)} varying columns skipped")
    for line in differences:
        print(line)
    print("equal" if not differences else f"{len(differences)} difference(s)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
