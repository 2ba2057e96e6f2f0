"""Leave-one-out splits, item features (tokens, pixels) and training batches."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from benchmark.data.raw import RawDataset
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


def _require_media(raw: RawDataset, modality: str, where: str) -> list[Path]:
    paths = raw.media_paths(modality)
    missing = [raw.item_keys[i] for i, path in enumerate(paths) if path is None]
    if missing:
        listed = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DatasetError(
            f"{raw.source}: {len(missing)} of {raw.n_items} items have no {modality} in {where} ({listed})"
        )
    return paths  # type: ignore[return-value]


def load_array_media(raw: RawDataset, modality: str, dtype: torch.dtype) -> torch.Tensor:
    """Stack every item's .npy array ([n_items + 1, ...], row 0 zero); shapes must agree."""
    paths = _require_media(raw, modality, f"{modality}/")
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


def load_images(raw: RawDataset, image_size: int) -> torch.Tensor:
    """uint8 pixels [n_items + 1, 3, size, size]; row 0 is padding. Missing or unreadable images are errors."""
    from PIL import Image

    pixels = torch.zeros((raw.n_items + 1, 3, image_size, image_size), dtype=torch.uint8)
    for index, (where, source) in enumerate(image_sources(raw), start=1):
        try:
            with Image.open(source) as image:
                image = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                pixels[index] = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        except OSError as error:
            raise DatasetError(f"{where}: unreadable image for item '{raw.item_keys[index - 1]}': {error}") from error
    return pixels


def image_sources(raw: RawDataset) -> Iterator[tuple[str, Any]]:
    """(where, file or bytes stream) per item, in item order; missing images are one error listing them."""
    if raw.image_lmdb is None:
        for path in _require_media(raw, "image", "images/"):
            yield str(path), path
        return
    try:
        import lmdb
    except ImportError as error:
        raise DatasetError(
            f"{raw.image_lmdb}: reading images from LMDB needs the lmdb package (pip install lmdb)"
        ) from error
    environment = lmdb.open(str(raw.image_lmdb), readonly=True, lock=False, subdir=raw.image_lmdb.is_dir())
    try:
        with environment.begin() as transaction:
            values = [transaction.get(key.encode()) for key in raw.item_keys]
        missing = [key for key, value in zip(raw.item_keys, values) if value is None]
        if missing:
            listed = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise DatasetError(
                f"{raw.image_lmdb}: {len(missing)} of {raw.n_items} items have no image in the LMDB ({listed})"
            )
        for key, value in zip(raw.item_keys, values):
            yield f"{raw.image_lmdb}[{key}]", io.BytesIO(cast(bytes, value))  # none missing: checked above
    finally:
        environment.close()


@dataclass
class ItemFeatures:
    """Everything a tower reads about an item, indexed by internal item id (row 0 = padding)."""

    tensors: dict[str, torch.Tensor]

    def gather(self, item_ids: torch.Tensor, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        return {name: tensor[item_ids] for name, tensor in self.tensors.items() if names is None or name in names}


def steps_per_epoch(split: SplitDataset, batch_size: int) -> int:
    return -(-len(split.train_sequences) // batch_size)
