"""A run's compacted file as readers see it: its name, the per-cell files it holds (named in its metadata), and
what a damaged one raises. Readers (`read.py`) and the compaction that writes it (`compaction.py`) both need this;
it lives apart from both so that neither imports the other back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

COMPACTED_NAME = "compacted.parquet"
SOURCES_KEY = b"mmbench_compacted_sources"


@dataclass(frozen=True)
class Source:
    name: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Source:
        stat = path.stat()
        return cls(path.name, stat.st_size, stat.st_mtime_ns)


class UnreadableCompactedFile(Exception):
    """A run's compacted file cannot be read (truncated, overwritten, not Parquet): it holds no sources we know of."""

    def __init__(self, path: Path, cause: Exception) -> None:
        super().__init__(f"{path}: not a readable compacted file ({type(cause).__name__}: {cause})")
        self.path = path


def compacted_sources(compacted: Path) -> set[Source]:
    """The per-cell files a compacted file holds (readers skip them if they are still there).

    Raises UnreadableCompactedFile for a damaged file: the caller names it and goes on with the other files.
    """
    try:
        metadata = pq.read_schema(compacted).metadata or {}
        if SOURCES_KEY not in metadata:  # another program's Parquet under our name: merging into it would mix rows
            raise ValueError("no list of the per-cell files it holds (not written by `mmbench results compact`)")
        return {Source(**entry) for entry in json.loads(metadata[SOURCES_KEY])}
    except Exception as error:  # noqa: BLE001 - pyarrow, json and the dataclass raise several types for damage
        raise UnreadableCompactedFile(compacted, error) from error


def already_compacted(path: Path, sources: set[Source]) -> bool:
    """A per-cell file whose rows are in its run's compacted file (same name, size and modification time)."""
    return Source.of(path) in sources
