"""A launcher: run one shard of a suite's cells on this machine, one at a time, so that N machines without a
scheduler split a suite between them (`--launcher shard --launcher-option shard=0/2` on one, `shard=1/2` on the
other; rows land in one shared --results directory, and resume skips what another shard finished).

Install with MMBENCH_PLUGINS=shard_launcher. The option is the launcher's own (its `option_keys` maps it to None),
so it checks the value itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.console import Console

from benchmark.errors import MMBenchError
from benchmark.launch.launchers import LAUNCHERS, LaunchRequest
from benchmark.launch.local import CellOutcome, run_cells
from benchmark.results.manifest import Manifest
from benchmark.suite.matrix import Cell


@dataclass(frozen=True)
class ShardLauncher:
    index: int
    count: int
    lock: bool = True
    name: str = "shard"
    option_keys: ClassVar[dict[str, str | None]] = {"shard": None}

    @classmethod
    def create(cls, request: LaunchRequest) -> ShardLauncher:
        text = request.options.get("shard", "0/1")
        match = re.fullmatch(r"(\d+)/(\d+)", text)
        if match is None or not int(match[1]) < int(match[2]):
            raise MMBenchError(f"--launcher-option shard={text}: expected I/N with 0 <= I < N, e.g. shard=0/2")
        return cls(int(match[1]), int(match[2]), request.lock)

    def run(
        self, cells: list[Cell], run_dir: Path, run_id: str, console: Console, manifest: Manifest
    ) -> list[CellOutcome]:
        # By the cell's config hash, not its position: resume hands a launcher only the cells not done yet, so
        # positions shift between machines; a hash puts a cell in the same shard on every one.
        mine = [cell for cell in cells if int(cell.config_hash, 16) % self.count == self.index]
        console.print(f"shard {self.index}/{self.count}: {len(mine)} of {len(cells)} cell(s)")
        return run_cells(mine, run_dir, run_id, console, self.lock, launcher=self.name)


LAUNCHERS.register("shard", ShardLauncher)
