"""Typed errors. Each carries the context a user needs to fix the input (file, line, cell)."""

from __future__ import annotations


class MMBenchError(Exception):
    """Base class: the CLI prints these as one clear message and exits non-zero."""


class SuiteError(MMBenchError):
    """One or more problems in a suite file; `problems` holds one 'file:line: key: message' each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class UnknownNameError(MMBenchError):
    """An unknown method, tower preset or dataset format."""


class CellSkipped(MMBenchError):
    """A cell that cannot run on this machine by design (a quantized base without a CUDA GPU or bitsandbytes): its
    row says `skipped`, with this reason, instead of failing."""


class TowerError(MMBenchError):
    """A tower cannot be built or a method cannot apply to it."""


class DatasetError(MMBenchError):
    """Malformed dataset input; the message names file and line (or item id)."""


class DatasetProblems(DatasetError):
    """An import refused because of bad rows; `problems` lists every one (the message shows the first)."""

    def __init__(self, message: str, problems: list[str]):
        self.problems = problems
        super().__init__(message)


class ResultsError(MMBenchError):
    """The results directory cannot be written or read."""


class CacheMissingError(MMBenchError):
    """A cached cell found no hidden-state cache: caches are built before the cell, in their own process."""


class NoMeasuredStepsError(MMBenchError):
    """Every step of a cell was warm-up: it measured nothing, so it cannot be an ok row."""


class MeasurementNotReadyError(MMBenchError):
    """A tracker's measurement was read before its `with` block ended (a harness bug, never bad input)."""
