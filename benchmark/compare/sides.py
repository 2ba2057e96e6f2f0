"""The two sides of a comparison: rows read from a results directory, a run directory or a Parquet file,
keyed by configuration, and the hardware they were measured on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from benchmark.analysis.leaderboard import with_config_id, with_hardware
from benchmark.errors import MMBenchError
from benchmark.results.read import read_results


class CompareInputError(MMBenchError):
    """A side of `mmbench compare` cannot be used (missing, empty, measured on other hardware)."""


# What makes timings comparable: the device, the driver's major version, CUDA and torch.
HARDWARE_FIELDS = ("hardware", "driver_major", "cuda_version", "torch_version")


@dataclass(frozen=True)
class Side:
    role: str  # "baseline" or "current"
    path: Path
    rows: pl.DataFrame  # every row, with `hardware`, `driver_major`, `config_id` and `config_label`
    warnings: list[str]

    def hardware(self) -> list[dict[str, str | None]]:
        """The distinct hardware signatures of the side's measured (ok) rows.

        A failed cell's row is written by the launcher, which knows less of the setup than a cell that ran (no
        CUDA version, for one): it measured no time, so it must not decide what the side's timings were taken on.
        """
        measured = self.rows.filter(pl.col("status") == "ok")
        distinct = measured.select(HARDWARE_FIELDS).unique().sort(HARDWARE_FIELDS, nulls_last=True)
        return distinct.to_dicts()

    def failed_cells(self) -> list[str]:
        """Each cell whose latest row failed, as 'cell id (status: first line of its error)', in cell order. A cell
        that failed and then ran (resume re-runs failed cells) is not failed; a skipped one (not run here by design)
        is not failed either: see `skipped_cells`."""
        return self._latest_cells(pl.col("status").is_in(["ok", "skipped"]).not_())

    def skipped_cells(self) -> list[str]:
        """Each cell whose latest row was skipped on this machine (a quantized base without a CUDA GPU), with the
        reason, in cell order."""
        return self._latest_cells(pl.col("status") == "skipped")

    def _latest_cells(self, condition: pl.Expr) -> list[str]:
        latest = self.rows.sort("end_time", nulls_last=False).unique("cell_id", keep="last")
        chosen = latest.filter(condition).sort("cell_id")
        return [
            f"{row['cell_id']} ({row['status']}" + (f": {row['error'].splitlines()[0][:160]})" if row["error"] else ")")
            for row in chosen.select("cell_id", "status", "error").iter_rows(named=True)
        ]

    def configurations(self) -> dict[str, pl.DataFrame]:
        """Rows by configuration (config_id: the work, without seed and repeat)."""
        return {str(key[0]): group for key, group in self.rows.group_by("config_id", maintain_order=True)}


def config_label(cell_id: str) -> str:
    """A cell id without its seed and repeat: the configuration's name in the table."""
    return re.sub(r"/(seed|repeat)=[^/]*", "", cell_id)


def load_side(path: Path, role: str, suite: str | None = None) -> Side:
    if not path.exists():
        raise CompareInputError(
            f"{role} {path} does not exist (a results directory, a run directory or a .parquet file)"
        )
    rows, warnings = read_results(path)
    if suite is not None:
        rows = rows.filter(pl.col("suite") == suite)
    if rows.is_empty():
        skipped = "".join(f"; {warning}" for warning in warnings)  # the unreadable files are why, if any
        raise CompareInputError(f"{role} {path}: no result rows" + (f" of suite '{suite}'" if suite else "") + skipped)
    rows = with_config_id(with_hardware(rows)).with_columns(
        pl.col("driver_version").str.split(".").list.first().alias("driver_major"),
        pl.col("cell_id").map_elements(config_label, return_dtype=pl.String).alias("config_label"),
    )
    return Side(role, path, rows, warnings)


def hardware_text(signature: dict[str, str | None]) -> str:
    parts = [str(signature["hardware"])]
    if signature["driver_major"]:
        parts.append(f"driver {signature['driver_major']}")
    if signature["cuda_version"]:
        parts.append(f"CUDA {signature['cuda_version']}")
    parts.append(f"torch {signature['torch_version']}")
    return ", ".join(parts)


def hardware_mismatch(baseline: Side, current: Side) -> str | None:
    """Why the sides' timings are not comparable, or None when they were measured on the same setup."""
    before, after = baseline.hardware(), current.hardware()
    if before == after or not before or not after:  # a side without a measured row has no timings to compare
        return None
    return (
        f"baseline measured on {'; '.join(map(hardware_text, before))}, "
        f"current on {'; '.join(map(hardware_text, after))}"
    )
