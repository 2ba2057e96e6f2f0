"""Leave-one-out splits, item features (arrays per item) and training batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from benchmark.data.raw import RawDataset, require_media
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, unusable
from benchmark.errors import DatasetError


@dataclass
class SplitDataset:
    """Leave-one-out: train on all but the last two items, validate on the second to last, test on the last."""

    n_items: int
    max_seq_len: int
    train_sequences: list[np.ndarray]  # up to max_seq_len + 1 items each (inputs + shifted targets)
    valid_history: list[np.ndarray]
    valid_target: np.ndarray
    test_history: list[np.ndarray]
    test_target: np.ndarray
    item_counts: np.ndarray  # training interactions per item id (index 0 unused)
    dropped_users: int = 0


def split_leave_one_out(raw: RawDataset, max_seq_len: int) -> SplitDataset:
    """Users shorter than MIN_SEQUENCE_LENGTH are dropped and counted (benchmark/data/sequence_rule.py)."""
    problem = unusable(raw.source, raw.sequences)
    if problem is not None:
        raise DatasetError(problem)
    train, valid_history, valid_target, test_history, test_target = [], [], [], [], []
    counts = np.zeros(raw.n_items + 1, dtype=np.int64)
    dropped = 0
    for sequence in raw.sequences:
        if len(sequence) < MIN_SEQUENCE_LENGTH:
            dropped += 1
            continue
        items = np.asarray(sequence, dtype=np.int64)
        train_part = items[:-2]  # at least an input and its target, by the rule
        np.add.at(counts, train_part, 1)
        train.append(train_part[-(max_seq_len + 1) :])
        valid_history.append(train_part[-max_seq_len:])
        valid_target.append(items[-2])
        test_history.append(items[:-1][-max_seq_len:])
        test_target.append(items[-1])
    return SplitDataset(
        n_items=raw.n_items,
        max_seq_len=max_seq_len,
        train_sequences=train,
        valid_history=valid_history,
        valid_target=np.asarray(valid_target),
        test_history=test_history,
        test_target=np.asarray(test_target),
        item_counts=counts,
        dropped_users=dropped,
    )


def left_pad(sequences: list[np.ndarray], length: int) -> torch.Tensor:
    batch = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        sequence = sequence[-length:]
        if len(sequence):
            batch[row, length - len(sequence) :] = torch.from_numpy(np.ascontiguousarray(sequence))
    return batch


def load_array_media(raw: RawDataset, modality: str, dtype: torch.dtype) -> torch.Tensor:
    """Stack every item's .npy array ([n_items + 1, ...], row 0 zero); shapes must agree."""
    paths = require_media(raw, modality, f"{modality}/")
    first = None
    stacked: torch.Tensor | None = None
    for index, path in enumerate(paths, start=1):
        try:
            array = np.load(path)
        except (OSError, ValueError) as error:
            raise DatasetError(
                f"{path}: unreadable {modality} for item '{raw.item_keys[index - 1]}': {error}"
            ) from error
        if stacked is None:  # the first item (`first` and `stacked` are set together)
            first = array.shape
            stacked = torch.zeros((raw.n_items + 1, *first), dtype=dtype)
        if array.shape != first:
            raise DatasetError(
                f"{path}: {modality} of item '{raw.item_keys[index - 1]}' has shape {array.shape}, the first item's "
                f"{first}"
            )
        stacked[index] = torch.from_numpy(array).to(dtype)
    return cast(torch.Tensor, stacked)  # a dataset has items, so the loop ran


@dataclass
class ItemFeatures:
    """Everything a tower reads about an item, indexed by internal item id (row 0 = padding)."""

    tensors: dict[str, torch.Tensor]

    def gather(self, item_ids: torch.Tensor, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        return {name: tensor[item_ids] for name, tensor in self.tensors.items() if names is None or name in names}


def steps_per_epoch(split: SplitDataset, batch_size: int) -> int:
    return -(-len(split.train_sequences) // batch_size)
