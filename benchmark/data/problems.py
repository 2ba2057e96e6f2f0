"""A problem found in a dataset: what kind, where (file and line), which item — structured, so nothing has to
parse a message back, and printed as `file:line: message`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

ProblemKind = Literal[
    "wrong number of fields",
    "undecodable text",
    "duplicate item id",
    "empty title",
    "unknown item id",
    "not a number",
    "no image",
    "unreadable image",
    "no media",  # a video/audio array (or another array modality) a tower needs
    "unreadable media",
    "too short",
    "unusable dataset",  # empty, or no user long enough to split
    "other",
]


@dataclass(frozen=True)
class DatasetProblem:
    kind: ProblemKind
    message: str
    file: str | None = None
    line: int | None = None
    item: str | None = None  # the item the problem is about (a missing or unreadable image, an empty title)

    def __str__(self) -> str:
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}: {self.message}" if self.file is not None else self.message

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": str(self)}


def at(path: Path | str, line: int | None, kind: ProblemKind, message: str, item: str | None = None) -> DatasetProblem:
    return DatasetProblem(kind, message, str(path), line, item)


def summarise(problems: list[DatasetProblem], shown: int) -> str:
    """The first `shown` problems, one per line, and how many more there are."""
    lines = "\n  ".join(str(problem) for problem in problems[:shown])
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"  {lines}{more}"


def counts_by_kind(problems: list[DatasetProblem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for problem in problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    return counts
