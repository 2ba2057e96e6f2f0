"""`mmbench results compact`: compact every finished run of a results directory, leaving running runs alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import ResultsError
from benchmark.results.compacted_file import COMPACTED_NAME, UnreadableCompactedFile, compacted_sources
from benchmark.results.compaction import CompactionResult, compact_run, per_cell_files


@dataclass(frozen=True)
class CompactOutcome:
    run_dir: Path
    action: str  # compacted, unchanged, running
    result: CompactionResult | None

    def line(self) -> str:
        if self.result is None:
            return f"{self.run_dir}: {self.action}"
        text = f"{self.run_dir}: {self.action} ({self.result.files_merged} file(s) merged, {self.result.rows} row(s))"
        return text + "".join(f"; {skipped}" for skipped in self.result.skipped)

    def to_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "run_dir": str(self.run_dir),
            "action": self.action,
            "files_merged": result.files_merged if result else 0,
            "rows": result.rows if result else None,
            "skipped": result.skipped if result else [],
        }


def _running(run_dir: Path) -> bool:
    """A run whose cells may still write rows: a manifest with a pending or running cell. Runs without a manifest
    (written before manifests existed) are finished."""
    if not (run_dir / "manifest.json").exists():
        return False
    from benchmark.results.run_status import cell_states

    _, states = cell_states(run_dir)
    return any(state.state in ("pending", "running") for state in states)


def _damaged_compacted_file(run_dir: Path) -> str | None:
    """Why the run's compacted file cannot be read, or None (readable, or there is none)."""
    compacted = run_dir / COMPACTED_NAME
    if not compacted.exists():
        return None
    try:
        compacted_sources(compacted)
    except UnreadableCompactedFile as error:
        return f"{error}; readers skip it (move it away, or restore it from a copy)"
    return None


def compact_store(results: Path) -> list[CompactOutcome]:
    if not results.is_dir():
        raise ResultsError(f"results directory {results} does not exist")
    run_dirs = sorted({path.parent for path in results.rglob("*.parquet") if not path.name.startswith(".")})
    outcomes = []
    for run_dir in run_dirs:
        if _running(run_dir):
            outcomes.append(CompactOutcome(run_dir, "running: left alone", None))
            continue
        if not per_cell_files(run_dir):
            damaged = _damaged_compacted_file(run_dir)
            outcomes.append(CompactOutcome(run_dir, f"left alone: {damaged}" if damaged else "unchanged", None))
            continue
        result = compact_run(run_dir)
        if result.left_alone is not None:
            outcomes.append(CompactOutcome(run_dir, f"left alone: {result.left_alone}", None))
        else:
            outcomes.append(CompactOutcome(run_dir, "compacted", result))
    return outcomes
