"""Training batches through a torch DataLoader: worker processes gather features while the device computes.

The shuffle order comes from the cell's seeded generator in the main process (one permutation per
epoch, as before), so every method of a seed sees the same batches; workers only collate.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from benchmark.data.collate import TrainBatch, collate_train_batch
from benchmark.data.dataset import ItemFeatures, SplitDataset, left_pad

# Batches each worker keeps ready ahead of the training step.
PREFETCH_FACTOR = 4


class _TrainSequences(Dataset[np.ndarray]):
    def __init__(self, sequences: list[np.ndarray]):
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.sequences[index]


class SeededBatchSampler(Sampler[list[int]]):
    """Shuffled index batches, one fresh permutation per epoch from the cell's generator; the last batch may be
    smaller."""

    def __init__(self, count: int, batch_size: int, generator: np.random.Generator):
        self.count, self.batch_size, self.generator = count, batch_size, generator

    def __iter__(self) -> Iterator[list[int]]:
        order = self.generator.permutation(self.count)
        for start in range(0, self.count, self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)


def _collate(
    sequences: list[np.ndarray],
    features: ItemFeatures,
    length: int,
    unique_items: bool,
    shapes: str,
    rows: int,
    part: tuple[int, int] | None,
) -> TrainBatch:
    return collate_train_batch(left_pad(sequences, length), features, unique_items, shapes, rows, part)


def default_num_workers(device: torch.device) -> int:
    """0 on a CPU, where workers would compete for the cores being timed; else up to 4, leaving a core to the
    trainer."""
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores - 1))


def train_loader(
    split: SplitDataset,
    features: ItemFeatures,
    batch_size: int,
    unique_items: bool,
    generator: np.random.Generator,
    num_workers: int,
    device: torch.device,
    shapes: str = "dynamic",
    part: tuple[int, int] | None = None,
) -> DataLoader[np.ndarray]:
    """`shapes`: the step shapes of collate_train_batch (static and bucketed batches have `batch_size` rows); `part`
    (rank, ranks): a distributed cell's rank, which draws the same global batches as every other rank (the same
    seeded order) and gathers the features of its share of their items only."""
    collate = functools.partial(
        _collate,
        features=features,
        length=split.max_seq_len + 1,
        unique_items=unique_items,
        shapes=shapes,
        rows=batch_size,
        part=part,
    )
    workers = num_workers > 0  # without workers, DataLoader's defaults: not persistent, no prefetch factor
    return DataLoader(
        _TrainSequences(split.train_sequences),
        batch_sampler=SeededBatchSampler(len(split.train_sequences), batch_size, generator),
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers,
        prefetch_factor=PREFETCH_FACTOR if workers else None,
    )
