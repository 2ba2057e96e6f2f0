"""The shape every measurement tracker has (optimum-benchmark's `trackers/`): a context manager that measures over
its `with` block and keeps one typed measurement when the block ends, however it ends.

`pause()`/`resume()` cut a span out of the measurement (the evaluation between epochs is not training's time,
memory or energy). A tracker measures once: enter, exit, then read `measurement`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from benchmark.errors import MeasurementNotReadyError

MeasurementT = TypeVar("MeasurementT")
TrackerT = TypeVar("TrackerT", bound="Tracker[Any]")


class Tracker(Generic[MeasurementT]):
    def __init__(self) -> None:
        self._measurement: MeasurementT | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> MeasurementT:
        raise NotImplementedError

    def pause(self) -> None:
        """Stop counting until `resume` (a tracker with nothing to cut out keeps counting)."""

    def resume(self) -> None:
        """Count again after `pause`."""

    def __enter__(self: TrackerT) -> TrackerT:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Also when the block raised: a failed cell keeps what was measured before it failed.
        self._measurement = self.stop()

    @property
    def finished(self) -> bool:
        return self._measurement is not None

    @property
    def measurement(self) -> MeasurementT:
        if self._measurement is None:
            raise MeasurementNotReadyError(f"{type(self).__name__}: the measurement is read after its `with` block")
        return self._measurement
