"""`make gpu-check`: a short run of the paper setting and the Versa/CROSSAN slices on a CUDA GPU,
the leaderboard, then the GPU-only tests.

On the lent GPU machine, $OUT collects what comes back, refreshed after every slice so that a
run cut short still returns what it measured: every row in one Parquet file (the per-cell files
sit too deep to travel), the report as Markdown and JSON, and the cell logs.
Without a CUDA GPU it says so, validates the suite, lists its cells and runs the smoke suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

GPU_SUITE = Path("suites/gpu-check.yaml")
SMOKE_SUITE = Path("suites/smoke.yaml")
# One tower set at a time, cheapest first.
SLICES = ("*/bert-base+vit-base/*", "*/qwen2-0.5b+vit-base/*", "*/text+image+video+audio/*")


def _mmbench(*arguments: str, stdout_path: Path | None = None) -> int:
    command = [sys.executable, "-m", "benchmark", *arguments]
    print("$ mmbench " + " ".join(arguments), file=sys.stderr, flush=True)
    if stdout_path is None:
        return subprocess.call(command)
    with open(stdout_path, "w") as handle:
        return subprocess.call(command, stdout=handle)


def _bundle(results: Path, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in results.rglob("*.parquet") if not p.name.startswith("."))
    if files:
        pq.write_table(
            pa.concat_tables([pq.read_table(f) for f in files], promote_options="default"), out / "rows.parquet"
        )
    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        for log in results.rglob("*.log"):
            archive.add(log, arcname=str(log.relative_to(results)))
    # The report needs polars; where it is missing the rows still come back for `report` elsewhere.
    _mmbench(
        "report", "--results", str(results), "--suite", "gpu-check", "--format", "md", stdout_path=out / "report.md"
    )
    _mmbench(
        "report", "--results", str(results), "--suite", "gpu-check", "--format", "json", stdout_path=out / "report.json"
    )


def main() -> int:
    import torch

    results = Path(os.environ.get("GPU_RESULTS", "results/gpu-check"))
    if not torch.cuda.is_available():
        print(
            "gpu-check: no CUDA GPU here; validating the GPU suite and running the CPU smoke suite instead.",
            file=sys.stderr,
        )
        code = _mmbench("validate", str(GPU_SUITE)) or _mmbench("run", str(GPU_SUITE), "--dry-run")
        return (
            code
            or _mmbench("run", str(SMOKE_SUITE), "--results", str(results))
            or _mmbench("report", "--results", str(results), "--suite", "smoke")
        )
    _mmbench("env")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    run_code = 0
    for cells in SLICES:
        run_code = _mmbench("run", str(GPU_SUITE), "--results", str(results), "--only", cells) or run_code
        if out is not None:
            _bundle(results, out)
    report_code = _mmbench("report", "--results", str(results), "--suite", "gpu-check")
    print("$ pytest -m gpu (the GPU-only tests)", file=sys.stderr, flush=True)
    test_code = subprocess.call(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "gpu",
            "-p",
            "no:cacheprovider",
            "tests/test_profile.py",
            "tests/test_precision.py",
            "tests/test_iisan.py",
            "tests/test_methods.py",
            "tests/test_cost_explained.py",
        ]
    )
    return run_code or report_code or test_code


if __name__ == "__main__":
    sys.exit(main())
