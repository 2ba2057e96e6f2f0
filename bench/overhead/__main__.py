"""`python -m bench.overhead` (`make bench-overhead`): mmbench's harness overhead, method by method.

For every cell of the given suites (filtered by --only), each round runs the cell with `mmbench run` — the whole
harness: subprocess, profiler threads, DataLoader, the row — and then the plain PyTorch loop of the same work
(plain_loop.py) in a process of its own; the order alternates from round to round, so drift on the device falls
on both sides alike. Per method it prints the median step of each side, their ratio (the median of the per-round
ratios, each listed), kernel-launching operators per step of each, host-device synchronisations inside mmbench's timed
step, and trainable parameters (which must match: the plain loop is an independent implementation of the method).
Raw step samples of both sides go to a JSON file (--out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TINY_SUITE = Path("suites/overhead-tiny.yaml")
PAPER_SUITE = Path("suites/overhead-paper.yaml")
# What "as fast as a plain loop" means here: mmbench's median step over the plain loop's.
TARGET_RATIO = {"cpu": 1.10, "cuda": 1.05}


@dataclass
class Side:
    step_ms: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    kernels: int | None = None
    syncs: int | None = None
    sync_ops: str = ""
    trainable_params: int | None = None
    error: str = ""


@dataclass
class Comparison:
    cell_id: str
    method: str
    mmbench: Side = field(default_factory=Side)
    plain: Side = field(default_factory=Side)

    def figures(self, device: str) -> dict[str, Any]:
        ours = statistics.median(self.mmbench.step_ms) if self.mmbench.step_ms else None
        theirs = statistics.median(self.plain.step_ms) if self.plain.step_ms else None
        # Each round's two runs are minutes apart at most: their ratio cancels the device's drift (on a shared CPU,
        # tens of percent within minutes), and the median over rounds resists one disturbed run.
        rounds = [a / b for a, b in zip(self.mmbench.round_medians, self.plain.round_medians, strict=False) if b]
        ratio = statistics.median(rounds) if rounds else None
        target = TARGET_RATIO["cuda" if device != "cpu" else "cpu"]
        return {
            "cell_id": self.cell_id,
            "method": self.method,
            "mmbench_ms": ours,
            "plain_ms": theirs,
            "ratio": ratio,
            "round_ratios": rounds,
            "within_target": ratio is not None and ratio <= target,
            "target": target,
            "mmbench_kernels": self.mmbench.kernels,
            "plain_kernels": self.plain.kernels,
            "mmbench_syncs": self.mmbench.syncs,
            "mmbench_sync_ops": self.mmbench.sync_ops,
            "plain_syncs": self.plain.syncs,
            "mmbench_params": self.mmbench.trainable_params,
            "plain_params": self.plain.trainable_params,
            "params_match": self.mmbench.trainable_params == self.plain.trainable_params,
            "errors": [e for e in (self.mmbench.error, self.plain.error) if e],
        }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_mmbench(suite: Path, cell_id: str, results: Path) -> Side:
    """The cell through the real CLI (`mmbench run --only CELL --force`): its row's step samples and census."""
    import pyarrow.parquet as pq

    command = [sys.executable, "-m", "benchmark", "run", str(suite), "--results", str(results)]
    command += ["--only", cell_id, "--force", "--json"]
    finished = subprocess.run(command, capture_output=True, text=True)
    side = Side()
    try:
        outcome = json.loads(finished.stdout)["cells"][0]
    except (ValueError, KeyError, IndexError):
        side.error = f"mmbench run failed (exit {finished.returncode}): {finished.stderr.strip()[-400:]}"
        return side
    if outcome["status"] != "ok":
        side.error = f"mmbench cell {outcome['status']}: {outcome.get('error')}"
        return side
    rows = [r for r in pq.read_table(outcome["row"]).to_pylist() if r["cell_id"] == cell_id]
    row = rows[-1]
    side.step_ms = list(row["step_ms"])
    side.round_medians = [statistics.median(side.step_ms)]
    side.kernels, side.syncs, side.sync_ops = row["step_kernels"], row["step_syncs"], row["step_sync_ops"] or ""
    side.trainable_params = row["trainable_params"]
    return side


def run_plain(cell_json: Path, device: str) -> Side:
    with tempfile.TemporaryDirectory(prefix="mmbench-plain-") as scratch:
        out = Path(scratch) / "plain.json"
        command = [sys.executable, "-m", "bench.overhead.plain_main", str(cell_json), str(out)]
        finished = subprocess.run([*command, "--device", device], capture_output=True, text=True)
        side = Side()
        if finished.returncode != 0 or not out.is_file():
            side.error = f"plain loop failed (exit {finished.returncode}): {finished.stderr.strip()[-400:]}"
            return side
        result = json.loads(out.read_text())
    side.step_ms = result["step_ms"]
    side.round_medians = [statistics.median(side.step_ms)]
    side.kernels, side.syncs, side.sync_ops = result["kernels"], result["syncs"], result["sync_ops"]
    side.trainable_params = result["trainable_params"]
    return side


def merge(total: Side, one: Side) -> None:
    total.step_ms += one.step_ms
    total.round_medians += one.round_medians
    for name in ("kernels", "syncs", "trainable_params"):
        if getattr(one, name) is not None:
            setattr(total, name, getattr(one, name))
    total.sync_ops = one.sync_ops or total.sync_ops
    total.error = one.error or total.error


def render(figures: list[dict[str, Any]], device_name: str) -> str:
    header = (
        "| method | cell | mmbench ms | plain ms | ratio [rounds] | kernels mmbench / plain | "
        "syncs in mmbench's step | trainable params mmbench / plain |"
    )
    lines = [f"harness overhead on {device_name}", "", header, "|" + "---|" * 8]
    for f in figures:
        if f["errors"]:
            lines.append(f"| {f['method']} | {f['cell_id']} | – | – | – | – | – | {'; '.join(f['errors'])} |")
            continue
        rounds = ", ".join(f"{r:.2f}" for r in f["round_ratios"])
        mark = "" if f["within_target"] else f" (> {f['target']:.2f})"
        params = f"{f['mmbench_params']:,} / {f['plain_params']:,}" + ("" if f["params_match"] else " DIFFER")
        syncs = str(f["mmbench_syncs"]) + (f" ({f['mmbench_sync_ops']})" if f["mmbench_sync_ops"] else "")
        lines.append(
            f"| {f['method']} | {f['cell_id']} | {f['mmbench_ms']:.2f} | {f['plain_ms']:.2f} | "
            f"{f['ratio']:.3f}{mark} [{rounds}] | {f['mmbench_kernels']} / {f['plain_kernels']} | {syncs} | {params} |"
        )
    return "\n".join(lines)


def default_plan(device: str, only: list[str] | None) -> list[tuple[Path, list[str] | None]]:
    if device == "cuda":
        return [(PAPER_SUITE, only)]
    return [(TINY_SUITE, only), (PAPER_SUITE, only or ["*_cached/*"])]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "suites",
        nargs="*",
        type=Path,
        help="suites whose cells to compare (default: on a GPU every cell of overhead-paper.yaml; on a CPU every cell "
        "of overhead-tiny.yaml and the cached cells of overhead-paper.yaml, whose tower steps would take minutes)",
    )
    parser.add_argument("--only", action="append", default=None, help="cell-id glob (repeatable; default: every cell)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each: mmbench, then plain)")
    parser.add_argument("--results", type=Path, default=Path("results/overhead"), help="where mmbench's rows go")
    parser.add_argument("--out", type=Path, default=None, help="raw samples and figures (JSON)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    arguments = parser.parse_args(argv)

    import torch

    from benchmark.plan.cells import planned_cells
    from benchmark.plan.loader import load_suite

    device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    plan = [(suite, arguments.only) for suite in arguments.suites] or default_plan(device, arguments.only)
    cells = []
    for suite, globs in plan:
        for cell in planned_cells(load_suite(suite)):
            if globs is None or any(fnmatch.fnmatch(cell.cell_id, glob) for glob in globs):
                cells.append((suite, cell))
    if not cells:
        _say("bench-overhead: no cell matches")
        return 2
    arguments.results.mkdir(parents=True, exist_ok=True)
    comparisons = {cell.cell_id: Comparison(cell.cell_id, cell.config.method.name) for _, cell in cells}
    with tempfile.TemporaryDirectory(prefix="mmbench-overhead-") as scratch:
        for round_index in range(arguments.rounds):
            for suite, cell in cells:
                cell_json = Path(scratch) / f"{cell.config_hash}.json"
                cell_json.write_text(json.dumps(cell.config.to_dict()))
                comparison = comparisons[cell.cell_id]
                order = ("mmbench", "plain") if round_index % 2 == 0 else ("plain", "mmbench")
                for side_name in order:
                    _say(f"round {round_index + 1}/{arguments.rounds}: {side_name} {cell.cell_id}")
                    if side_name == "mmbench":
                        merge(comparison.mmbench, run_mmbench(suite, cell.cell_id, arguments.results))
                    else:
                        merge(comparison.plain, run_plain(cell_json, device))
    figures = [comparison.figures(device) for comparison in comparisons.values()]
    out = arguments.out or arguments.results / f"overhead-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    raw = {name: asdict(c) for name, c in comparisons.items()}
    out.write_text(json.dumps({"device": device_name, "figures": figures, "raw": raw}, indent=1))
    _say(f"raw samples: {out}")
    if arguments.json:
        print(json.dumps({"device": device_name, "figures": figures}, indent=2))
    else:
        print(render(figures, device_name))
    failed = any(f["errors"] or not f["params_match"] for f in figures)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main(sys.argv[1:]))
