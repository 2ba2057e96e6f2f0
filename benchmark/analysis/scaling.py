"""Scaling: the same configuration on 1, 2, 4 ... ranks, side by side, with the speed-up of its global throughput
and the scaling efficiency (speed-up over the ranks added; 1.0 is linear).

A family is every leaderboard row whose configuration differs only in how it is spread over ranks
(`train.distributed`, `train.nproc_per_node`, `train.dist_backend`), on the same hardware; the plain one-process
cell is the family's one-rank member. The global batch, learning rate and data order are the same at every size
(README: One cell on several GPUs), so the rows measure the same training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

# The keys that spread one configuration over ranks; everything else makes another family.
SPREAD_KEYS = ("nproc_per_node", "distributed", "dist_backend")


@dataclass(frozen=True)
class ScalingRow:
    family: str  # method label and what the family's rows share (dataset / towers / hardware)
    method: str
    ranks: int
    strategy: str  # ddp | fsdp | one process
    epoch_s: float | None
    samples_per_s: float | None  # the global batch's sequences per second
    speedup: float | None  # throughput against the family's fewest ranks
    efficiency: float | None  # speed-up / (ranks / fewest ranks)
    peak_mem_gib: float | None  # the largest rank's
    device_epoch_s: float | None  # epoch s x ranks


def _family_key(row: dict[str, Any]) -> str:
    config = json.loads(row["config_json"])
    for key in SPREAD_KEYS:
        config.get("train", {}).pop(key, None)
    for key in ("suite", "cell_id", "seed", "repeat", "timeout_s"):
        config.pop(key, None)
    return json.dumps([config, row["hardware"]], sort_keys=True)


def scaling_rows(table: pl.DataFrame) -> list[ScalingRow]:
    """The families of a leaderboard table (one row per configuration and hardware) with at least two sizes."""
    if table.is_empty() or "world_size" not in table.columns:
        return []
    families: dict[str, list[dict[str, Any]]] = {}
    for row in table.iter_rows(named=True):
        families.setdefault(_family_key(row), []).append(row)
    found: list[ScalingRow] = []
    for members in families.values():
        sizes = {member["world_size"] or 1 for member in members}
        if len(sizes) < 2:
            continue
        members.sort(key=lambda member: (member["world_size"] or 1, member["distributed"] or ""))
        base = members[0]
        base_ranks, base_rate = base["world_size"] or 1, base["samples_per_s"]
        for member in members:
            ranks, rate = member["world_size"] or 1, member["samples_per_s"]
            speedup = rate / base_rate if rate and base_rate else None
            found.append(
                ScalingRow(
                    family=f"{member['method_label'] or member['method']}: {member['dataset']} / {member['towers']} / "
                    f"{member['hardware']}",
                    method=member["method_label"] or member["method"],
                    ranks=ranks,
                    strategy=member["distributed"] or "one process",
                    epoch_s=member["epoch_s"],
                    samples_per_s=rate,
                    speedup=speedup,
                    efficiency=speedup * base_ranks / ranks if speedup is not None else None,
                    peak_mem_gib=member["peak_mem_gib"],
                    device_epoch_s=member["device_epoch_s"],
                )
            )
    return found
