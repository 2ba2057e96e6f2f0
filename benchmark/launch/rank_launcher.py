"""The process that starts a distributed cell's ranks: torchrun (`torch.distributed.run`), run in this process
after it has armed the same parent-death signal as every cell process, so that a killed `mmbench run` takes the
agent and, through theirs, every rank with it.

Usage: python -m benchmark.launch.rank_launcher RANKS CELL_MAIN_ARGS...
The ranks run `python -m benchmark.launch.cell_main CELL_MAIN_ARGS...` (tests name another program in
MMBENCH_RANK_PROGRAM: a script path). torchrun runs standalone on this machine (a free port), never restarts a
failed rank (`--max-restarts 0`: a failed cell is recorded, not retried), and checks its ranks every 0.1 s, so the
others are stopped within a moment of one failing.
"""

from __future__ import annotations

import os
import sys

from benchmark.launch.child import EXIT_STOPPED, CellStopped, stop_with_parent

RANK_PROGRAM_VARIABLE = "MMBENCH_RANK_PROGRAM"
MONITOR_INTERVAL_S = 0.1


def torchrun_arguments(ranks: int, cell_arguments: list[str]) -> list[str]:
    program = os.environ.get(RANK_PROGRAM_VARIABLE)
    target = [program] if program else ["-m", "benchmark.launch.cell_main"]
    return [
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(ranks),
        "--max-restarts",
        "0",
        "--monitor-interval",
        str(MONITOR_INTERVAL_S),
        *target,
        *cell_arguments,
    ]


def main(argv: list[str]) -> int:
    try:
        stop_with_parent()
    except CellStopped as stopped:
        print(f"distributed cell stopped before its ranks started: {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(torchrun_arguments(int(argv[0]), argv[1:]))
    except CellStopped as stopped:  # torchrun's agent has stopped the ranks on its way out
        print(f"distributed cell stopped: {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    except ChildFailedError as failed:  # its summary names each failed rank and how it ended (rank_failures.py)
        print(str(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
