"""Training batches on the device, ready before their step starts.

The next batch is copied to the device and its inputs prepared (pixels normalised, cached states widened, masks
built: each model module's `prepare_inputs`) while the current step runs — on a GPU on a side stream, on a CPU
before the step's clock starts. What a step's clock then sees is the step: forward, backward and update, plus
whatever part of the copy did not overlap (the step waits for its batch's copy inside the clock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from benchmark.data.collate import TrainBatch

Prepare = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def input_preparation(model: nn.Module, dtype: torch.dtype) -> Prepare:
    """The model's input preparation: every module that has `prepare_inputs(features, dtype)`, in order."""
    preparers = [module for module in model.modules() if callable(getattr(module, "prepare_inputs", None))]

    def prepare(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for module in preparers:
            features = module.prepare_inputs(features, dtype)  # type: ignore[operator]
        return features

    return prepare


@dataclass
class ReadyBatch:
    host: TrainBatch  # as the loader made it (counts are read from here, never from the device)
    device: TrainBatch  # copied and prepared (on a GPU: possibly still in flight until `wait`)
    copied: torch.cuda.Event | None

    def wait(self) -> TrainBatch:
        """Make the compute stream wait for this batch's copy (call inside the step's clock)."""
        if self.copied is not None:
            stream = torch.cuda.current_stream()
            stream.wait_event(self.copied)
            for tensor in _tensors(self.device):
                tensor.record_stream(stream)  # the copy stream's allocations now belong to the compute stream too
        return self.device


def _tensors(batch: TrainBatch) -> list[torch.Tensor]:
    return [batch.sequences, batch.encoded_ids, batch.position_index, *batch.features.values()]


class DeviceBatches:
    """Iterates ReadyBatch: each `next` hands over the batch prepared earlier and starts preparing the one after."""

    def __init__(self, host_batches: Iterator[TrainBatch], device: torch.device, prepare: Prepare):
        self.host_batches, self.device, self.prepare = host_batches, device, prepare
        # torch.cuda.Stream and Event have unannotated constructors (torch/cuda/streams.py).
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None  # type: ignore[no-untyped-call]
        self.pending: ReadyBatch | None = None
        self.started = False

    def _start(self, host: TrainBatch | None) -> ReadyBatch | None:
        if host is None:
            return None
        if self.stream is None:
            return ReadyBatch(host, _prepared(host.to(self.device), self.prepare), None)
        with torch.cuda.stream(self.stream):
            device_batch = _prepared(host.to(self.device), self.prepare)
            copied = torch.cuda.Event()  # type: ignore[no-untyped-call]  # unannotated in torch
            copied.record(self.stream)
        return ReadyBatch(host, device_batch, copied)

    def __iter__(self) -> DeviceBatches:
        return self

    def __next__(self) -> ReadyBatch:
        if not self.started:
            self.pending, self.started = self._start(next(self.host_batches, None)), True
        ready = self.pending
        if ready is None:
            raise StopIteration
        self.pending = self._start(next(self.host_batches, None))
        return ready


def _prepared(batch: TrainBatch, prepare: Prepare) -> TrainBatch:
    return dataclasses.replace(batch, features=prepare(batch.features))
