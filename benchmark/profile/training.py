"""The trackers that run over a cell's training phase — memory, energy, contention — entered and left together,
with the evaluation between epochs cut out of all three and measured on its own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from benchmark.profile.contention import ContentionTracker
from benchmark.profile.energy_tracker import EnergyTracker
from benchmark.profile.memory_tracker import EvaluationMemoryTracker, MemoryTracker
from benchmark.profile.nvml import NvmlDevice
from benchmark.results.pieces import ContentionFigures, Energy, TrainingMemory


class TrainingTrackers:
    def __init__(
        self, device: torch.device, nvml_device: NvmlDevice | None, nvml_hz: float, own_root: int | None = None
    ):
        """`own_root`: the process whose tree is the cell, for contention (default this one)."""
        self.memory = MemoryTracker(device, nvml_device, nvml_hz)
        self.energy = EnergyTracker(device, nvml_device)
        self.contention = ContentionTracker(
            self.memory.other_gpu_pids, cpu_cell=device.type == "cpu", own_root=own_root
        )
        self.evaluation_memory = EvaluationMemoryTracker(device)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TrainingTrackers:
        # Left in reverse: energy's last segment closes first, then memory's samplers stop, and contention is judged
        # last, with every other GPU process the NVML sampler saw.
        for tracker in (self.contention, self.memory, self.energy):
            self._stack.enter_context(tracker)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[None]:
        """Around an evaluation during training: neither training's energy nor memory; its own peak is measured."""
        self.energy.pause()
        self.memory.pause()
        with self.evaluation_memory.span():
            yield
        self.memory.resume()
        self.energy.resume()

    @property
    def finished(self) -> bool:
        return self.memory.finished

    @property
    def measurements(self) -> tuple[TrainingMemory, Energy, ContentionFigures]:
        return self.memory.measurement, self.energy.measurement, self.contention.measurement
