"""How a distributed cell failed: each failing rank leaves a small JSON file beside the cell's files, and the
launcher, once torchrun has ended every rank, writes the cell's one row from them.

When one rank fails, the others fail after it: a peer's socket closes under them, or a collective times out
waiting for it (a *collateral* failure). The root cause is the first failure that is not collateral; when every
failure is collateral (a rank that hung, or died without a word), the first of them, and torchrun's own summary of
a rank that died by a signal, name the rank. No torch here: the launcher reads these files."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# What a rank's error says when a peer failed first (gloo's closed sockets and timeouts, NCCL's aborts).
COLLATERAL_PHRASES = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "timed out",
    "timeout",
    "communicator was aborted",
    "nccl error",
    "socket",
)
COLLATERAL_TYPES = ("DistBackendError", "DistNetworkError", "DistStoreError")


@dataclass(frozen=True)
class RankFailure:
    rank: int
    world_size: int
    status: str  # oom | error
    error: str
    collateral: bool  # a consequence of another rank's failure (or hang)
    time: float  # seconds since the epoch

    def describe(self) -> str:
        cause = " (another rank failed or stopped answering first)" if self.collateral else ""
        return f"rank {self.rank} of {self.world_size}: {self.error}{cause}"


def is_collateral(error_type: str, message: str) -> bool:
    lowered = message.lower()
    return error_type in COLLATERAL_TYPES or any(phrase in lowered for phrase in COLLATERAL_PHRASES)


def failure_file(row_path: Path, rank: int) -> Path:
    return row_path.parent / "cells" / f"{row_path.stem}.rank{rank}.failure.json"


def clear_rank_failures(row_path: Path) -> None:
    """Before a (re)run of the cell: no failure of an earlier attempt may be read as this one's."""
    for path in (row_path.parent / "cells").glob(f"{row_path.stem}.rank*.failure.json"):
        path.unlink(missing_ok=True)


def write_rank_failure(
    row_path: Path, rank: int, world_size: int, status: str, error_type: str, message: str
) -> RankFailure:
    collateral = status != "oom" and is_collateral(error_type, message)  # running out of memory is first-hand
    failure = RankFailure(rank, world_size, status, f"{error_type}: {message}", collateral, time.time())
    path = failure_file(row_path, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(failure)))
    return failure


def read_rank_failures(row_path: Path) -> list[RankFailure]:
    failures = []
    for path in sorted((row_path.parent / "cells").glob(f"{row_path.stem}.rank*.failure.json")):
        try:
            failures.append(RankFailure(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):  # a rank killed while writing it: torchrun's summary still names it
            continue
    return failures


def root_cause(failures: list[RankFailure]) -> RankFailure | None:
    """The failure that started it: the first that is not collateral, else the first."""
    if not failures:
        return None
    first_hand = [failure for failure in failures if not failure.collateral]
    return min(first_hand or failures, key=lambda failure: failure.time)


# torchrun's summary of a failed run: "rank      : 1 (local_rank: 1)" ... "exitcode  : -9 (pid: 1234)".
_SUMMARY_RANK = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def ranks_ended(log_text: str) -> list[tuple[int, int]]:
    """(rank, exit code) of every rank torchrun's summary (the last in the cell's log) lists as failed."""
    start = log_text.rfind("Failures:")
    summary = log_text[start:] if start >= 0 else log_text[log_text.rfind("Root Cause") :]
    return [(int(rank), int(code)) for rank, code in _SUMMARY_RANK.findall(summary)]


# What torchrun's agent sends the ranks it stops after another failed: not a cause.
AGENT_STOP_CODE = -15


def rank_died(log_text: str, reported: set[int] | None = None) -> tuple[int, int] | None:
    """(rank, exit code) of a rank that ended without reporting its failure (none of `reported`), as torchrun's
    summary lists it: one killed by a signal other than the agent's own SIGTERM, or one that exited non-zero
    without a word. torchrun's "root cause" is the first failure *it observed*, which can be a rank whose socket a
    killed peer had closed, so every listed rank is looked at. None if there is none."""
    silent = [(rank, code) for rank, code in ranks_ended(log_text) if rank not in (reported or set())]
    for rank, code in silent:
        if code < 0 and code != AGENT_STOP_CODE:
            return rank, code
    return next(((rank, code) for rank, code in silent if code > 0), None)
