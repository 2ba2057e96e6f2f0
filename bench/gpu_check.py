"""`make gpu-check`: every GPU path of mmbench proven in one call on one CUDA GPU, most important first.

Stages, each writing what it measured under $OUT before the next starts (so a call cut short loses nothing):

1. `mmbench env`;
2. the harness-overhead benchmark at the paper's shapes — every method of gpu-check.yaml on bert-base + vit-base
   against its plain PyTorch loop (their rows are that slice of gpu-check, so step 5 does not run them again);
3. train.compile and the CUDA-graph axis on the cached IISAN cell (gpu-check-graphs.yaml);
4. the GPU-marked tests (sync-free steps in sync-debug mode, the CUDA memory stack, BitFit's LayerNorm, ...);
5. the rest of gpu-check.yaml (a decoder-LLM slice for IISAN-Versa, a four-modality slice for CROSSAN);
6. a one-GPU pool run;
7. one-rank distributed cells through torchrun and NCCL (DDP LoRA; FSDP FFT if the time allows) beside the plain
   cells of step 2, their step time and peak memory side by side;
8. the leaderboard of everything;
9. every row's predicted against measured memory and step time (`mmbench estimate --check`), and the calibration
   those rows give (`mmbench estimate calibrate`).

A stage starts only if its estimate fits the time left (GPU_CHECK_BUDGET_S, default 510 s: the device's 15 minutes
leave room for the machine's start and a partial rerun); a skipped stage is named. Without a CUDA GPU it says so,
validates the GPU suites, lists their cells and runs the CPU smoke suite instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GPU_SUITE = Path("suites/gpu-check.yaml")
GRAPHS_SUITE = Path("suites/gpu-check-graphs.yaml")
PEFT_SUITE = Path("suites/gpu-check-peft.yaml")
QLORA_SUITE = Path("suites/gpu-check-qlora.yaml")
SMOKE_SUITE = Path("suites/smoke.yaml")
PAPER_SLICE = "*/bert-base+vit-base/*"
GPU_TESTS = (
    "tests/test_step_sync_free.py",
    "tests/test_cuda_graphs.py",
    "tests/test_profile.py",
    "tests/test_precision.py",
    "tests/test_iisan.py",
    "tests/test_methods.py",
    "tests/test_cost_explained.py",
    "tests/test_quantized_base.py",
    "tests/test_distributed.py",
)
DEFAULT_BUDGET_S = 510.0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _call(command: list[str], stdout_path: Path | None = None) -> int:
    _say("$ " + " ".join(command))
    if stdout_path is None:
        return subprocess.call(command)
    with open(stdout_path, "w") as handle:
        return subprocess.call(command, stdout=handle)


def _mmbench(*arguments: str, stdout_path: Path | None = None) -> int:
    return _call([sys.executable, "-m", "benchmark", *arguments], stdout_path)


@dataclass(frozen=True)
class Stage:
    name: str
    estimate_s: float  # what it takes on an H100/H200, roughly: a stage that cannot fit is skipped, not cut
    run: Callable[[], int]
    # Beyond the default 8.5 minutes: runs when earlier stages left the time (or GPU_CHECK_BUDGET_S allows it).
    optional: bool = False


def run_stages(stages: list[Stage], budget_s: float, after_each: Callable[[], None]) -> tuple[int, list[str]]:
    """Run the stages in order while their estimates fit the budget; (first failing exit code or 0, skipped names)."""
    started = time.monotonic()
    code, skipped = 0, []
    for stage in stages:
        left = budget_s - (time.monotonic() - started)
        if stage.estimate_s > left:
            _say(f"gpu-check: skipping '{stage.name}' (needs ~{stage.estimate_s:.0f} s, {left:.0f} s left)")
            skipped.append(stage.name)
            continue
        _say(f"gpu-check: {stage.name} ({left:.0f} s left)")
        stage_code = stage.run()
        code = code or stage_code
        after_each()
    return code, skipped


def _bundle(results: Path, out: Path) -> None:
    """Every row so far in one Parquet file (per-cell files sit too deep to travel) and the cell logs, under $OUT."""
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


def _report(results: Path, out: Path | None) -> int:
    """The leaderboard on the terminal, and as Markdown and JSON under $OUT (the report needs polars: without it
    the rows still come back, for `report` elsewhere)."""
    code = _mmbench("report", "--results", str(results))
    if out is not None:
        for form in ("md", "json"):
            _mmbench("report", "--results", str(results), "--format", form, stdout_path=out / f"report.{form}")
    return code


def _predicted_against_measured(results: Path, out: Path | None) -> int:
    """Each cell's predicted torch peak allocated, NVML process peak and step time against what it measured, the
    median and worst error per method; and the calibration these rows give, beside the rows under $OUT."""
    code = _mmbench("estimate", "--check", str(results))
    if out is not None:
        _mmbench("estimate", "--check", str(results), "--json", stdout_path=out / "estimate-check.json")
        code = code or _mmbench("estimate", "calibrate", str(results), "--out", str(out / "estimate-calibration.json"))
    return code


def _one_rank_run(results: Path, method: str, strategy: str) -> int:
    """The paper slice's `method` on one rank through torchrun (NCCL), beside its plain cell of the overhead stage."""
    spread = ["--set", f"train.distributed={strategy}", "--set", "train.nproc_per_node=1"]
    only = f"*/bert-base+vit-base/{method}/*"
    return _mmbench("run", str(GPU_SUITE), "--results", str(results), "--only", only, *spread)


def _one_rank_beside_plain(results: Path, out: Path | None) -> int:
    """Each one-rank distributed cell beside its plain cell: median step and peak memory, and their ratios."""
    import pyarrow.parquet as pq

    rows = [row for path in results.rglob("*.parquet") for row in pq.read_table(path).to_pylist()]
    lines = ["| method | cell | step ms | peak GiB | ranks |", "|---|---|---|---|---|"]
    for method in ("lora", "fft"):
        found = [
            row
            for row in rows
            if row.get("method") == method and row.get("towers") == "bert-base+vit-base" and row["status"] == "ok"
        ]
        plain = next((row for row in found if not row.get("distributed")), None)
        for row in found:
            kind = row.get("distributed") or "plain"
            step, peak = row["step_ms_median"], row["peak_mem_gib"]
            if plain is not None and row is not plain and step and peak:
                kind += f" ({step / plain['step_ms_median']:.3f}x step, {peak / plain['peak_mem_gib']:.3f}x peak)"
            lines.append(f"| {method} | {kind} | {step} | {peak} | {row.get('world_size')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        (out / "one-rank-distributed.md").write_text(text)
    return 0


def gpu_stages(results: Path, out: Path | None) -> list[Stage]:
    scratch = out or results
    overhead = [sys.executable, "-m", "bench.overhead", str(GPU_SUITE), "--only", PAPER_SLICE, "--rounds", "1"]
    overhead += ["--results", str(results), "--out", str(scratch / "overhead.json")]
    tests = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p", "no:cacheprovider", *GPU_TESTS]
    pool = ["run", str(SMOKE_SUITE), "--results", str(results), "--only", "*/lora/*", "--launcher", "pool"]
    pool += ["--gpus", "all", "--set", "train.device=cuda", "--set", "train.precision=bf16"]
    suite_rest = ["run", str(GPU_SUITE), "--results", str(results)]
    # Estimates for an H100/H200 host, mostly process start-up, tower building and data loading per cell.
    return [
        Stage("environment", 5, lambda: _mmbench("env")),
        Stage("harness overhead at paper shapes", 210, lambda: _call(overhead, scratch / "overhead.md")),
        Stage("compile and CUDA graphs", 90, lambda: _mmbench("run", str(GRAPHS_SUITE), "--results", str(results))),
        Stage("GPU-marked tests", 60, lambda: _call(tests, scratch / "gpu-tests.txt")),
        Stage(
            "gpu-check.yaml, the cells not run yet (LLM and four-modality slices)", 80, lambda: _mmbench(*suite_rest)
        ),
        Stage("one-GPU pool", 20, lambda: _mmbench(*pool)),
        Stage(
            "a one-rank DDP cell beside the plain one (torchrun, NCCL)",
            25,
            lambda: _one_rank_run(results, "lora", "ddp") or _one_rank_beside_plain(results, out),
        ),
        Stage(
            "every PEFT method at paper shapes (gpu-check-peft.yaml)",
            100,
            lambda: _mmbench("run", str(PEFT_SUITE), "--results", str(results)),
            optional=True,
        ),
        Stage(
            "quantized bases at paper shapes (gpu-check-qlora.yaml)",
            60,
            lambda: _mmbench("run", str(QLORA_SUITE), "--results", str(results)),
            optional=True,
        ),
        Stage(
            "a one-rank FSDP cell beside the plain one",
            25,
            lambda: _one_rank_run(results, "fft", "fsdp") or _one_rank_beside_plain(results, out),
            optional=True,
        ),
        Stage("leaderboard", 10, lambda: _report(results, out)),
        # Reads the rows' own predictions (every cell above ran through `mmbench run`, which predicts it first).
        Stage("predicted against measured (estimate --check)", 5, lambda: _predicted_against_measured(results, out)),
    ]


def main() -> int:
    import torch

    results = Path(os.environ.get("GPU_RESULTS", "results/gpu-check"))
    if not torch.cuda.is_available():
        _say("gpu-check: no CUDA GPU here; validating the GPU suites and running the CPU smoke suite instead.")
        code = 0
        for suite in (GPU_SUITE, GRAPHS_SUITE, PEFT_SUITE):
            code = code or _mmbench("validate", str(suite)) or _mmbench("run", str(suite), "--dry-run")
        return (
            code
            or _mmbench("run", str(SMOKE_SUITE), "--results", str(results))
            or _mmbench("report", "--results", str(results), "--suite", "smoke")
            or _mmbench("estimate", "--check", str(results))
        )
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    budget = float(os.environ.get("GPU_CHECK_BUDGET_S", DEFAULT_BUDGET_S))
    results.mkdir(parents=True, exist_ok=True)
    code, skipped = run_stages(
        gpu_stages(results, out), budget, lambda: _bundle(results, out) if out is not None else None
    )
    if skipped:
        _say(f"gpu-check: skipped for time: {', '.join(skipped)} (GPU_CHECK_BUDGET_S={budget:.0f})")
    return code


if __name__ == "__main__":
    sys.exit(main())
