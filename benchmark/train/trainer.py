"""The training loop of one cell: timed steps on prepared batches, epochs, early stopping through the evaluator.
What it measures is kept by trackers (profile/): step timing, and memory, energy and contention over training."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.data.collate import TrainBatch
from benchmark.data.dataset import steps_per_epoch
from benchmark.data.loader import default_num_workers, train_loader
from benchmark.errors import NoMeasuredStepsError
from benchmark.profile.collective_share import CollectiveProfile
from benchmark.profile.nvml import NvmlDevice
from benchmark.profile.op_census import OpCensus
from benchmark.profile.static_memory import static_memory
from benchmark.profile.step_cost import count_step_cost
from benchmark.profile.step_timing import StepTiming, StepWork
from benchmark.profile.timers import StepClock, summarize_ms, sync_debug, synchronize
from benchmark.profile.training import TrainingTrackers
from benchmark.progress import phase, step
from benchmark.results.pieces import (
    Compilation,
    ContentionFigures,
    Energy,
    LearningCurve,
    RankFigures,
    StaticMemory,
    StepCost,
    StepOps,
    Timing,
    TrainingMemory,
    time_to_accuracy,
)
from benchmark.suite.config import TrainConfig
from benchmark.train.batches import DeviceBatches, ReadyBatch, input_preparation
from benchmark.train.compile import CompiledLoss
from benchmark.train.distributed.rank_figures import merged_rank_figures, slowest_rank_timing
from benchmark.train.distributed.wrap import distributed_step
from benchmark.train.evaluator import Evaluator
from benchmark.train.precision import DTYPES, autocast_factory, grad_scaler
from benchmark.train.setup import TrainingSetup

# Devices where torch's fused AdamW runs (one multi-tensor kernel, step counters on the device).
FUSED_OPTIMIZER_DEVICES = ("cuda", "cpu")


def training_optimizer(model: nn.Module, train: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """The optimizer of a cell's trainable parameters (`mmbench estimate` simulates the same one).

    The fused implementation updates every parameter in a few kernels, with its step counters on the device: the
    default one launches a dozen kernels per parameter tensor and reads each step counter on the host."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=train.lr,
        weight_decay=train.weight_decay,
        fused=device.type in FUSED_OPTIMIZER_DEVICES,
    )


class Trainer:
    """Runs the steps of one cell. Its trackers keep what they measured: `step_timing` every step's time outside
    warm-up, the wait for its batch, its loss and each epoch's time; `trackers` memory, energy and contention over
    training, evaluation cut out. The trainer itself keeps the first step's cost and the last warm-up step's census."""

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
        self.static_memory: StaticMemory | None = None
        self.step_cost: StepCost | None = None
        self.step_ops: StepOps | None = None
        self.world = setup.world
        # A distributed cell's step: DDP or FSDP around the loss over every rank's share (train/distributed/).
        self.step = distributed_step(model, self.world, device, config.train.precision) if self.world else None
        self.loss = CompiledLoss(
            self.step if self.step is not None else model.training_loss,
            self.train_config.compile,
            self.train_config.compile_backend,
            device,
            self.train_config.compile_mode,
        )
        self.optimizer = training_optimizer(model, self.train_config, device)
        self.prepare = input_preparation(model, DTYPES[self.train_config.precision])
        self.autocast = autocast_factory(self.train_config.precision, device)
        self.scaler = grad_scaler(self.train_config.precision, device)
        workers = self.train_config.num_workers
        self.num_workers = default_num_workers(device) if workers is None else workers
        # A rank's cell is torchrun's whole process tree: the other ranks are no contention.
        own_root = os.getppid() if self.world is not None else None
        self.trackers = TrainingTrackers(device, nvml_device, self.train_config.nvml_hz, own_root)
        self.rank_figures: RankFigures | None = None  # a distributed cell's, once training succeeded on every rank
        self.collectives: CollectiveProfile | None = None  # the profile of its last warm-up step
        self._merged: tuple[TrainingMemory, Energy] | None = None
        self.step_timing = StepTiming(device, self.steps_per_epoch, self.num_workers)
        self._census: OpCensus | None = None

    @property
    def timing(self) -> Timing | None:
        """Set when training ends, however it ends."""
        return self.step_timing.measurement if self.step_timing.finished else None

    @property
    def measurement(self) -> tuple[TrainingMemory, Energy, ContentionFigures] | None:
        if not self.trackers.finished:
            return None
        memory, energy, contention = self.trackers.measurements
        return (*self._merged, contention) if self._merged is not None else (memory, energy, contention)

    def planned_steps(self) -> int:
        planned = self.steps_per_epoch * self.train_config.epochs
        return min(planned, self.train_config.max_steps) if self.train_config.max_steps else planned

    def count_first_step(self, ready: ReadyBatch) -> None:
        """FLOPs and saved activations of the first batch, on an untimed forward + backward (see step_cost)."""
        with self.step_timing.untimed():
            on_device = ready.wait()

            step = self.step if self.step is not None else self.model.training_loss

            def loss() -> torch.Tensor:
                with self.autocast():
                    value: torch.Tensor = step(
                        on_device.sequences, on_device.features, on_device.encoded_ids, on_device.position_index
                    )
                    return value

            self.step_cost = count_step_cost(self.model, loss, int(on_device.encoded_ids.numel()))
            synchronize(self.device)

    def census_step(self, index: int) -> contextlib.AbstractContextManager[Any]:
        """The last warm-up step runs under an operator census (kernels, casts, synchronisations): the very code of a
        timed step, on a step that is not timed. Not with torch.compile: the census cannot see inside compiled code."""
        if index != self.train_config.warmup_steps - 1 or self.loss.active:
            return contextlib.nullcontext()
        census = OpCensus()
        self._census = census
        if self.world is None:
            return census
        # A distributed step: also the collectives' share of its kernel time (profile/collective_share.py).
        self.collectives = CollectiveProfile(self.device)
        stack = contextlib.ExitStack()
        stack.enter_context(self.collectives)
        stack.enter_context(census)
        return stack

    def step_work(self, host: TrainBatch) -> StepWork:
        tokens = int(self.tokens_per_item[host.encoded_ids].sum()) if self.tokens_per_item is not None else None
        return StepWork(host.real_sequences, int(host.encoded_ids.numel()), host.real_items, tokens)

    def train_step(self, ready: ReadyBatch, wait_ms: float) -> None:
        index = self.step_timing.steps  # this step's, from 0
        if index == 0:
            self.count_first_step(ready)
        if index == self.train_config.warmup_steps:
            self.trackers.energy.begin()
        graphs = self.loss.graphs()
        host = ready.host
        with self.census_step(index), StepClock(self.device) as clock, sync_debug(self.device):
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
        if self._census is not None and self.step_ops is None:
            result = self._census.result
            self.step_ops = StepOps(result.kernels, result.casts, result.sync_count, result.sync_summary())
        if index == 0:  # outside the clock: gradients and optimizer state exist from here on
            with self.step_timing.untimed():
                self.static_memory = static_memory(self.model, self.optimizer)
        loss_value = float(loss.detach())
        compiled = self.loss.graphs() > graphs
        if compiled:
            self.loss.compile_step_ms.append(clock.elapsed_ms)
        if index < self.train_config.warmup_steps:
            self.step_timing.warmup_step(clock.elapsed_ms, loss_value)
        elif compiled:
            self.step_timing.compile_step(loss_value)
        else:
            self.step_timing.measured_step(clock.elapsed_ms, wait_ms, loss_value, self.step_work(host))

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
            (self.world.rank, self.world.size) if self.world is not None else None,
        )
        epochs = self.train_config.epochs
        self.model.train()
        step_medians: list[float | None] = []
        try:
            with self.trackers, self.step_timing:
                for epoch in range(1, epochs + 1):
                    if self._run_epoch(epoch, loader, planned):
                        break
                if self.world is not None:  # every rank ran the same steps: each step took as long as its slowest
                    step_medians = slowest_rank_timing(self.step_timing)
        finally:
            del loader  # persistent workers end here, after the contention reading counted them as ours
        if self.world is not None:
            memory, energy, _ = self.trackers.measurements
            share = self.collectives.share if self.collectives is not None else None
            merged_memory, merged_energy, self.rank_figures = merged_rank_figures(
                self.world, memory, energy, step_medians, self.device, share
            )
            self._merged = (merged_memory, merged_energy)
        if not self.step_timing.step_ms:
            raise NoMeasuredStepsError(
                f"no measured steps: {self.step_timing.steps} step(s) ran and all were warm-up "
                f"(warmup_steps={self.train_config.warmup_steps}, "
                f"{self.steps_per_epoch} step(s) per epoch x {epochs} epoch(s), "
                f"max_steps={self.train_config.max_steps}); "
                "lower warmup_steps or run more steps"
            )

    def _run_epoch(self, epoch: int, loader: Iterable[Any], planned: int) -> bool:
        """One epoch's steps, its time (without the untimed counting) and its validation; True when training ends
        here (the last epoch, max_steps reached, or early stopping)."""
        epochs, every, max_steps = self.train_config.epochs, self.config.eval.every, self.train_config.max_steps
        timing = self.step_timing
        cut = False
        with timing.epoch() as span:
            batches = DeviceBatches(iter(loader), self.device, self.prepare)
            while True:
                asked = time.perf_counter()
                batch = next(batches, None)
                wait_ms = (time.perf_counter() - asked) * 1000.0
                if batch is None:
                    break
                span.waited_s += wait_ms / 1000.0
                self.train_step(batch, wait_ms)
                self.progress(step(timing.steps, planned, timing.losses[-1]))
                if max_steps and timing.steps >= max_steps:
                    cut = True
                    break
            del batches  # a batch prepared ahead for a step that will not run is not evaluation's memory
            span.complete = not cut
        last = cut or epoch == epochs
        if self.evaluator is not None and (epoch % every == 0 or last):
            # Evaluation is neither training time, memory nor energy; its memory is released before the next step.
            with self.trackers.evaluation():
                stop = self.evaluator.validate(epoch, timing.train_s)
            if stop and not last:
                timing.stopped_early = True
                return True
        return last

    @property
    def compilation(self) -> Compilation | None:
        return self.loss.figures(summarize_ms(self.step_timing.step_ms)["median"])

    def learning_curve(self) -> LearningCurve | None:
        if self.evaluator is None or not self.evaluator.curve:
            return None
        train_s, scores = (list(values) for values in zip(*self.evaluator.curve, strict=True))
        fraction = self.config.eval.tta_fraction
        return LearningCurve(scores, train_s, fraction, time_to_accuracy(scores, train_s, fraction))
