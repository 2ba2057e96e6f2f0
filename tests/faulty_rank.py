"""A rank program for tests/test_distributed.py: the real cell (benchmark.launch.cell_main) with one fault injected
on one rank at one training step, as MMBENCH_TEST_FAULT says: KIND:RANK:STEP, KIND one of raise (an exception),
oom (torch's out-of-memory error), kill (SIGKILL to itself: a rank that dies without a word) or hang (a rank that
stops answering). torchrun runs it by path (MMBENCH_RANK_PROGRAM)."""

from __future__ import annotations

import os
import signal
import sys
import time

import torch

from benchmark.launch import cell_main
from benchmark.train.trainer import Trainer

KIND, RANK, STEP = os.environ["MMBENCH_TEST_FAULT"].split(":")
real_step = Trainer.train_step


def faulty_step(self: Trainer, ready, wait_ms: float) -> None:  # type: ignore[no-untyped-def]
    if int(os.environ["RANK"]) == int(RANK) and self.step_timing.steps == int(STEP):
        if KIND == "raise":
            raise ValueError("injected failure on this rank")
        if KIND == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        if KIND == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if KIND == "hang":
            time.sleep(3600)
    real_step(self, ready, wait_ms)


Trainer.train_step = faulty_step  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cell_main.main(sys.argv[1:]))
