"""A background thread that calls `sample_once` at a fixed rate, with pause/resume around evaluation."""

from __future__ import annotations

import threading
import time


class PeriodicSampler:
    def __init__(self, hz: float):
        self.interval = 1.0 / hz
        self.samples = 0
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._thread: threading.Thread | None = None
        self._active_s = 0.0
        self._resumed_at = 0.0

    @property
    def available(self) -> bool:
        return True

    @property
    def started(self) -> bool:
        return self._thread is not None

    def sample_once(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        next_time = time.perf_counter()
        while not self._stop.is_set():
            if not self._running.wait(timeout=0.05):
                next_time = time.perf_counter()
                continue
            self.sample_once()
            self.samples += 1
            next_time += self.interval
            delay = next_time - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_time = time.perf_counter()

    def start(self) -> None:
        if not self.available:
            return
        self.sample_once()
        self._resume_clock()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _resume_clock(self) -> None:
        self._resumed_at = time.perf_counter()
        self._running.set()

    def pause(self) -> None:
        if self._thread is not None and self._running.is_set():
            self._running.clear()
            self._active_s += time.perf_counter() - self._resumed_at
            self.sample_once()

    def resume(self) -> None:
        if self._thread is not None and not self._running.is_set():
            self._resume_clock()

    def stop(self) -> None:
        if self._thread is None:
            return
        self.pause()
        self._stop.set()
        self._thread.join()
        self._thread = None

    @property
    def achieved_hz(self) -> float | None:
        return self.samples / self._active_s if self._active_s > 0 else None
