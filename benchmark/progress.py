"""Progress events: one type, sent by cells and cache builds (as JSON lines from a subprocess, or in-process),
and one renderer that draws them on a rich progress bar."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from rich.progress import Progress, TaskID

EventKind = Literal["phase", "step", "done"]


@dataclass(frozen=True)
class ProgressEvent:
    kind: EventKind
    phase: str | None = None  # "data", "towers", "train", "cache text", "validate (epoch 2)", ...
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    status: str | None = None  # "done": the outcome, with `error` and the caches `built` by a cache build
    error: str | None = None
    built: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({key: value for key, value in asdict(self).items() if value not in (None, ())})

    @classmethod
    def from_json(cls, line: str) -> ProgressEvent | None:
        """The event on a line, or None for a line that is not one (a stray print from a library)."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("kind") not in ("phase", "step", "done"):
            return None
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        if "built" in known:
            known["built"] = tuple(known["built"])
        return cls(**known)


def phase(name: str, total_steps: int | None = None) -> ProgressEvent:
    return ProgressEvent("phase", phase=name, total_steps=total_steps)


def step(number: int, total_steps: int | None, loss: float | None = None) -> ProgressEvent:
    return ProgressEvent("step", step=number, total_steps=total_steps, loss=loss)


def done(status: str, error: str | None = None, built: tuple[str, ...] = ()) -> ProgressEvent:
    return ProgressEvent("done", status=status, error=error, built=built)


ProgressSink = Callable[[ProgressEvent], None]


def ignore(event: ProgressEvent) -> None:
    """A sink for callers that show no progress."""


class BarRenderer:
    """Draws events on one task of a rich progress display: the phase as its label, steps as its bar."""

    def __init__(self, progress: Progress, task: TaskID):
        self.progress, self.task = progress, task

    def show(self, event: ProgressEvent, label: str = "") -> None:
        prefix = f"{label} " if label else ""
        if event.kind == "phase":
            self.progress.update(
                self.task,
                description=f"{prefix}[{event.phase}]" if label else str(event.phase),
                total=event.total_steps,
                completed=0,
            )
        elif event.kind == "step":
            self.progress.update(self.task, completed=event.step, total=event.total_steps)
