"""The training loop of one cell: timed steps on prepared batches, epochs, early stopping through the evaluator, and
the timing, memory and energy it measured."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from benchmark.data.dataset import steps_per_epoch
from benchmark.data.loader import default_num_workers, train_loader
from benchmark.errors import NoMeasuredStepsError
from benchmark.profile.nvml import NvmlDevice
from benchmark.profile.op_census import OpCensus
from benchmark.profile.static_memory import static_memory
from benchmark.profile.step_cost import count_step_cost
from benchmark.profile.timers import StepClock, single_epoch_without_warmup, summarize_ms, sync_debug, synchronize
from benchmark.profile.training import TrainingProfiler
from benchmark.progress import phase, step
from benchmark.results.pieces import (
    Compilation,
    ContentionFigures,
    Energy,
    LearningCurve,
    StaticMemory,
    StepCost,
    StepOps,
    Timing,
    TrainingMemory,
    time_to_accuracy,
)
from benchmark.train.batches import DeviceBatches, ReadyBatch, input_preparation
from benchmark.train.compile import CompiledLoss

# Devices where torch's fused AdamW runs (one multi-tensor kernel, step counters on the device).
FUSED_OPTIMIZER_DEVICES = ("cuda", "cpu")
from benchmark.train.evaluator import Evaluator
from benchmark.train.precision import DTYPES, autocast_factory, grad_scaler
from benchmark.train.setup import TrainingSetup


class Trainer:
    """Runs the steps of one cell and keeps what they measured: every step's time outside warm-up, the wait for
    its batch, its loss; each epoch's time; the first step's cost and the census of the last warm-up step."""

    def __init__(
        self,
        setup: TrainingSetup,
        nvml_device: NvmlDevice | None,
        evaluator: Evaluator | None,
        tokens_per_item: torch.Tensor | None = None,
    ) -> None:
        model, split, config, device = setup.model, setup.split, setup.config, setup.device
        self.model, self.split, self.features, self.config = model, split, setup.features, config
        self.tokens_per_item = tokens_per_item
        self.train_config = config.train
        self.device, self.evaluator, self.progress = device, evaluator, setup.progress
        self.steps_per_epoch = steps_per_epoch(split, config.train.batch_size)
        self.timing: Timing | None = None  # set when training ends, however it ends
        self.measurement: tuple[TrainingMemory, Energy, ContentionFigures] | None = None
        self.static_memory: StaticMemory | None = None
        self.step_cost: StepCost | None = None
        self.step_ops: StepOps | None = None
        self.loss = CompiledLoss(
            model.training_loss,
            self.train_config.compile,
            self.train_config.compile_backend,
            device,
            self.train_config.compile_mode,
        )
        self.profiler = TrainingProfiler(device, nvml_device, self.train_config.nvml_hz)
        # The fused implementation updates every parameter in a few kernels, with its step counters on the device: the
        # default one launches a dozen kernels per parameter tensor and reads each step counter on the host.
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=self.train_config.lr,
            weight_decay=self.train_config.weight_decay,
            fused=device.type in FUSED_OPTIMIZER_DEVICES,
        )
        self.prepare = input_preparation(model, DTYPES[self.train_config.precision])
        self.autocast = autocast_factory(self.train_config.precision, device)
        self.scaler = grad_scaler(self.train_config.precision, device)
        workers = self.train_config.num_workers
        self.num_workers = default_num_workers(device) if workers is None else workers
        self.step_ms: list[float] = []
        self.warmup_ms: list[float] = []
        self.data_wait_ms: list[float] = []  # per measured step: how long the loop waited for its batch
        self.epoch_samples: list[float] = []
        self.epoch_wait_s: list[float] = []  # per complete epoch: total wait for batches
        self.losses: list[float] = []
        self.measured_sequences = 0
        self.step_items: list[int] = []  # items encoded by each measured step
        self.measured_tokens = 0
        self.measured_items = 0  # real (non-padding) items encoded by the measured steps
        self._census: OpCensus | None = None
        self.untimed_s = 0.0  # counting done inside an epoch outside the step clock, taken out of its time
        self.train_s = 0.0  # training time so far (epochs without evaluation and without the counting)
        self.step = 0
        self.stopped_early = False

    def planned_steps(self) -> int:
        planned = self.steps_per_epoch * self.train_config.epochs
        return min(planned, self.train_config.max_steps) if self.train_config.max_steps else planned

    def count_first_step(self, ready: ReadyBatch) -> None:
        """FLOPs and saved activations of the first batch, on an untimed forward + backward (see step_cost)."""
        counted_from = time.perf_counter()
        on_device = ready.wait()

        def loss() -> torch.Tensor:
            with self.autocast():
                return self.model.training_loss(
                    on_device.sequences, on_device.features, on_device.encoded_ids, on_device.position_index
                )

        self.step_cost = count_step_cost(self.model, loss, int(on_device.encoded_ids.numel()))
        synchronize(self.device)
        self.untimed_s += time.perf_counter() - counted_from

    def census_step(self) -> contextlib.AbstractContextManager[Any]:
        """The last warm-up step runs under an operator census (kernels, casts, synchronisations): the very code of a
        timed step, on a step that is not timed. Not with torch.compile: the census cannot see inside compiled code."""
        if self.step != self.train_config.warmup_steps - 1 or self.loss.active:
            return contextlib.nullcontext()
        census = OpCensus()
        self._census = census
        return census

    def train_step(self, ready: ReadyBatch, wait_ms: float) -> None:
        if self.step == 0:
            self.count_first_step(ready)
        if self.step == self.train_config.warmup_steps:
            self.profiler.begin_energy()
        graphs = self.loss.graphs()
        host = ready.host
        with self.census_step(), StepClock(self.device) as clock, sync_debug(self.device):
            batch = ready.wait()
            with self.autocast():
                loss = self.loss(batch.sequences, batch.features, batch.encoded_ids, batch.position_index)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
                self.scaler.step(self.optimizer)  # fused AdamW takes the scale and the inf check on the device
                self.scaler.update()
            else:
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                self.optimizer.step()
        self.step += 1
        if self._census is not None and self.step_ops is None:
            result = self._census.result
            self.step_ops = StepOps(result.kernels, result.casts, result.sync_count, result.sync_summary())
        if self.step == 1:  # outside the clock: gradients and optimizer state exist from here on
            counted_from = time.perf_counter()
            self.static_memory = static_memory(self.model, self.optimizer)
            self.untimed_s += time.perf_counter() - counted_from
        self.losses.append(float(loss.detach()))
        compiled = self.loss.graphs() > graphs
        if compiled:
            self.loss.compile_step_ms.append(clock.elapsed_ms)
        if self.step <= self.train_config.warmup_steps:
            self.warmup_ms.append(clock.elapsed_ms)
        elif not compiled:  # a step that compiled measures the compiler: its time is compile_s, not a step
            self.step_ms.append(clock.elapsed_ms)
            self.data_wait_ms.append(wait_ms)
            self.measured_sequences += host.real_sequences
            self.step_items.append(int(host.encoded_ids.numel()))
            self.measured_items += host.real_items
            if self.tokens_per_item is not None:
                self.measured_tokens += int(self.tokens_per_item[host.encoded_ids].sum())

    def run(self) -> None:
        planned = self.planned_steps()
        self.progress(phase("train", planned))
        loader = train_loader(
            self.split,
            self.features,
            self.train_config.batch_size,
            self.train_config.unique_items,
            np.random.default_rng(self.config.seed),
            self.num_workers,
            self.device,
            self.train_config.step_shapes,
        )
        epochs = self.train_config.epochs
        self.profiler.start()
        self.model.train()
        try:
            for epoch in range(1, epochs + 1):
                if self._run_epoch(epoch, loader, planned):
                    break
        finally:
            self.measurement = self.profiler.stop()
            del loader  # persistent workers end here, after the contention reading counted them as ours
            self.timing = self.measured_timing()
        if not self.step_ms:
            raise NoMeasuredStepsError(
                f"no measured steps: {self.step} step(s) ran and all were warm-up "
                f"(warmup_steps={self.train_config.warmup_steps}, "
                f"{self.steps_per_epoch} step(s) per epoch x {epochs} epoch(s), "
                f"max_steps={self.train_config.max_steps}); "
                "lower warmup_steps or run more steps"
            )

    def _run_epoch(self, epoch: int, loader: Iterable[Any], planned: int) -> bool:
        """One epoch's steps, its time (without the untimed counting) and its validation; True when training ends
        here (the last epoch, max_steps reached, or early stopping)."""
        epochs, every = self.train_config.epochs, self.config.eval.every
        synchronize(self.device)
        epoch_started = time.perf_counter()
        self.untimed_s = 0.0
        waited_s = 0.0
        cut = False
        batches = DeviceBatches(iter(loader), self.device, self.prepare)
        while True:
            asked = time.perf_counter()
            batch = next(batches, None)
            wait_ms = (time.perf_counter() - asked) * 1000.0
            if batch is None:
                break
            waited_s += wait_ms / 1000.0
            self.train_step(batch, wait_ms)
            self.progress(step(self.step, planned, self.losses[-1]))
            if self.train_config.max_steps and self.step >= self.train_config.max_steps:
                cut = True
                break
        del batches  # a batch prepared ahead for a step that will not run is not evaluation's memory
        synchronize(self.device)
        epoch_s = time.perf_counter() - epoch_started - self.untimed_s
        self.train_s += epoch_s
        if not cut:
            self.epoch_samples.append(epoch_s)
            self.epoch_wait_s.append(waited_s)
        last = cut or epoch == epochs
        if self.evaluator is not None and (epoch % every == 0 or last):
            self.profiler.pause()  # evaluation is neither training time, memory nor energy
            stop = self.evaluator.validate(epoch, self.train_s)
            self.profiler.resume()  # its memory is released before the next training step
            if stop and not last:
                self.stopped_early = True
                return True
        return last

    @property
    def compilation(self) -> Compilation | None:
        return self.loss.figures(summarize_ms(self.step_ms)["median"])

    def learning_curve(self) -> LearningCurve | None:
        if self.evaluator is None or not self.evaluator.curve:
            return None
        train_s, scores = (list(values) for values in zip(*self.evaluator.curve, strict=True))
        fraction = self.config.eval.tta_fraction
        return LearningCurve(scores, train_s, fraction, time_to_accuracy(scores, train_s, fraction))

    def measured_timing(self) -> Timing:
        per_epoch = self.steps_per_epoch
        summary = summarize_ms(self.step_ms)
        wait = summarize_ms(self.data_wait_ms)
        measured_s = sum(self.step_ms) / 1000.0
        epoch_s: float | None = None
        epoch_kind: str | None = None
        wait_per_epoch: float | None = None
        if len(self.epoch_samples) > 1:
            # The first epoch carries the warm-up (allocator growth, kernel selection, worker start); later ones do not.
            epoch_s, epoch_kind = float(np.median(self.epoch_samples[1:])), "measured"
            wait_per_epoch = float(np.median(self.epoch_wait_s[1:]))
        elif self.epoch_samples:
            epoch_kind = "measured"
            epoch_s = single_epoch_without_warmup(self.epoch_samples[0], self.warmup_ms, summary["median"])
            wait_per_epoch = self.epoch_wait_s[0]
        elif summary["median"] is not None and wait["median"] is not None:
            # Like a measured epoch, the estimate includes the wait for batches, not only the compute step.
            wait_per_epoch = wait["median"] * per_epoch / 1000.0
            epoch_s, epoch_kind = summary["median"] * per_epoch / 1000.0 + wait_per_epoch, "estimated"
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
            epochs_trained=self.step / per_epoch if per_epoch else None,
            data_wait_ms=self.data_wait_ms,
            train_loss=self.losses,
            final_loss=self.losses[-1] if self.losses else None,
            stopped_early=self.stopped_early,
            samples_per_s=self.measured_sequences / measured_s if measured_s else None,
            items_per_s=self.measured_items / measured_s if measured_s else None,
            tokens_per_s=self.measured_tokens / measured_s if measured_s and self.tokens_per_item is not None else None,
            step_items_median=float(np.median(self.step_items)) if self.step_items else None,
            epoch_s=epoch_s,
            epoch_kind=epoch_kind,
            data_wait_s_per_epoch=wait_per_epoch,
            data_share=min(wait_per_epoch / epoch_s, 1.0) if epoch_s and wait_per_epoch is not None else None,
        )
