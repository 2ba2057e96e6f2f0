"""One plain-loop run in its own process: `python -m bench.overhead.plain_main CELL_JSON OUT_JSON [--device D]`.

The loop itself (plain_loop.py) imports nothing of mmbench; this wrapper applies the operator census — the same
instrument mmbench applies to its own last warm-up step — to the plain loop's last warm-up step, and writes the
figures as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

from bench.overhead.plain_loop import run
from bench.overhead.plain_towers import Unsupported
from benchmark.profile.op_census import OpCensus


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead.plain_main")
    parser.add_argument("cell_json", type=Path)
    parser.add_argument("out_json", type=Path)
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    arguments = parser.parse_args(argv)
    cell = json.loads(arguments.cell_json.read_text())
    train = cell["train"]
    wanted = arguments.device if arguments.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device("cuda", 0) if wanted == "cuda" else torch.device("cpu")
    warmup = max(int(train["warmup_steps"]), 1)
    steps = int(train["max_steps"]) - warmup if train.get("max_steps") else 20
    census = OpCensus()

    def around_step(index: int) -> contextlib.AbstractContextManager[Any]:
        return census if index == warmup - 1 else contextlib.nullcontext()

    torch.manual_seed(cell["seed"])
    try:
        result = run(cell, device, warmup, max(steps, 1), around_step)
    except Unsupported as unsupported:
        print(f"plain loop: {unsupported}", file=sys.stderr)
        return 3
    result.update(
        kernels=census.result.kernels,
        casts=census.result.casts,
        syncs=census.result.sync_count,
        sync_ops=census.result.sync_summary(),
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    )
    arguments.out_json.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
