"""The timing of a cell's training: every step's time outside warm-up, the wait for its batch, its loss and the work
it did; each epoch's time, without the counting done inside it off the step clock. `measurement` is the `Timing`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.profile.timers import single_epoch_without_warmup, summarize_ms, synchronize
from benchmark.profile.tracker import Tracker
from benchmark.results.pieces import Timing


@dataclass(frozen=True)
class StepWork:
    """What a measured step processed, counted on the host batch."""

    sequences: int  # real (non-padding) user sequences
    items_encoded: int  # items the step's item encoder ran on
    real_items: int  # of which not padding
    tokens: int | None  # real text tokens of those items (None: no modality counts tokens)


class EpochSpan:
    """One epoch in progress: the wait for batches so far, and whether it ran to its end (a cut epoch is not a
    sample of an epoch's time)."""

    def __init__(self) -> None:
        self.waited_s = 0.0
        self.complete = True


class StepTiming(Tracker[Timing]):
    def __init__(self, device: torch.device, steps_per_epoch: int, num_workers: int):
        super().__init__()
        self.device, self.steps_per_epoch, self.num_workers = device, steps_per_epoch, num_workers
        self.step_ms: list[float] = []
        self.warmup_ms: list[float] = []
        self.data_wait_ms: list[float] = []  # per measured step: how long the loop waited for its batch
        self.epoch_samples: list[float] = []
        self.epoch_wait_s: list[float] = []  # per complete epoch: total wait for batches
        self.losses: list[float] = []
        self.step_items: list[int] = []  # items encoded by each measured step
        self.measured_sequences = 0
        self.measured_items = 0  # real (non-padding) items encoded by the measured steps
        self.measured_tokens: int | None = None
        self.untimed_s = 0.0  # counting done inside the current epoch outside the step clock
        self.train_s = 0.0  # training time so far (epochs without evaluation and without the counting)
        self.steps = 0
        self.stopped_early = False

    def start(self) -> None:
        """Nothing to start: steps and epochs are recorded as they end."""

    def warmup_step(self, elapsed_ms: float, loss: float) -> None:
        self.steps += 1
        self.warmup_ms.append(elapsed_ms)
        self.losses.append(loss)

    def compile_step(self, loss: float) -> None:
        """A step that compiled measures the compiler (its time is compile_s), not a step."""
        self.steps += 1
        self.losses.append(loss)

    def measured_step(self, elapsed_ms: float, wait_ms: float, loss: float, work: StepWork) -> None:
        self.steps += 1
        self.losses.append(loss)
        self.step_ms.append(elapsed_ms)
        self.data_wait_ms.append(wait_ms)
        self.measured_sequences += work.sequences
        self.step_items.append(work.items_encoded)
        self.measured_items += work.real_items
        if work.tokens is not None:
            self.measured_tokens = (self.measured_tokens or 0) + work.tokens

    @contextlib.contextmanager
    def untimed(self) -> Iterator[None]:
        """Counting inside an epoch that is not training (FLOPs, static memory): taken out of the epoch's time."""
        counted_from = time.perf_counter()
        yield
        self.untimed_s += time.perf_counter() - counted_from

    @contextlib.contextmanager
    def epoch(self) -> Iterator[EpochSpan]:
        synchronize(self.device)
        started = time.perf_counter()
        self.untimed_s = 0.0
        span = EpochSpan()
        yield span  # an epoch that raises is neither a sample nor training time (and is not synchronised again)
        synchronize(self.device)
        epoch_s = time.perf_counter() - started - self.untimed_s
        self.train_s += epoch_s
        if span.complete:
            self.epoch_samples.append(epoch_s)
            self.epoch_wait_s.append(span.waited_s)

    def _epoch_time(
        self, median_ms: float | None, wait_median_ms: float | None
    ) -> tuple[float | None, str | None, float | None]:
        """(epoch seconds, measured|estimated, wait for batches per epoch)."""
        if len(self.epoch_samples) > 1:
            # The first epoch carries the warm-up (allocator growth, kernel selection, worker start); later ones do not.
            return float(np.median(self.epoch_samples[1:])), "measured", float(np.median(self.epoch_wait_s[1:]))
        if self.epoch_samples:
            epoch_s = single_epoch_without_warmup(self.epoch_samples[0], self.warmup_ms, median_ms)
            return epoch_s, "measured", self.epoch_wait_s[0]
        if median_ms is not None and wait_median_ms is not None:
            # Like a measured epoch, the estimate includes the wait for batches, not only the compute step.
            wait_per_epoch = wait_median_ms * self.steps_per_epoch / 1000.0
            return median_ms * self.steps_per_epoch / 1000.0 + wait_per_epoch, "estimated", wait_per_epoch
        return None, None, None

    def stop(self) -> Timing:
        per_epoch = self.steps_per_epoch
        summary = summarize_ms(self.step_ms)
        wait_median = summarize_ms(self.data_wait_ms)["median"]
        epoch_s, epoch_kind, wait_per_epoch = self._epoch_time(summary["median"], wait_median)
        measured_s = sum(self.step_ms) / 1000.0
        return Timing(
            steps_per_epoch=per_epoch,
            num_workers=self.num_workers,
            step_ms=self.step_ms,
            warmup_ms=self.warmup_ms,
            measured_steps=len(self.step_ms),
            step_ms_median=summary["median"],
            step_ms_p10=summary["p10"],
            step_ms_p90=summary["p90"],
            epoch_s_samples=self.epoch_samples,
            epochs_run=len(self.epoch_samples),
            epochs_trained=self.steps / per_epoch if per_epoch else None,
            data_wait_ms=self.data_wait_ms,
            train_loss=self.losses,
            final_loss=self.losses[-1] if self.losses else None,
            stopped_early=self.stopped_early,
            samples_per_s=self.measured_sequences / measured_s if measured_s else None,
            items_per_s=self.measured_items / measured_s if measured_s else None,
            tokens_per_s=self.measured_tokens / measured_s if measured_s and self.measured_tokens is not None else None,
            step_items_median=float(np.median(self.step_items)) if self.step_items else None,
            epoch_s=epoch_s,
            epoch_kind=epoch_kind,
            data_wait_s_per_epoch=wait_per_epoch,
            data_share=min(wait_per_epoch / epoch_s, 1.0) if epoch_s and wait_per_epoch is not None else None,
        )
