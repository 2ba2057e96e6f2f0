"""Where a cell ran: the launcher, the pooled device, the SLURM job and the node, as row columns.

Launchers pass them to the cell's processes as environment variables, so the cell's own row and a
row the launcher writes for it (crash, timeout) say the same.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

LAUNCHER = "MMBENCH_LAUNCHER"
ASSIGNED_DEVICE = "MMBENCH_ASSIGNED_DEVICE"
JOB_ID = "MMBENCH_JOB_ID"
NODE = "MMBENCH_NODE"


def placement_columns(environment: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "launcher": environment.get(LAUNCHER, "local"),
        "assigned_device": environment.get(ASSIGNED_DEVICE),
        "slurm_job_id": environment.get(JOB_ID),
        "node": environment.get(NODE) or socket.gethostname(),
    }
