"""The data side of an estimate: how many items and training sequences a cell has, the shape of every item's
features, and the batches its steps will encode, without reading a single picture into memory.

Item features are meta tensors (shape and dtype, no values) of the full item count; their per-item shape comes from
the features of the first two items, built as the cell builds them. Where the data can be read cheaply (any dataset
on disk, a generated one already generated) the batches are the cell's own: the loader with the cell's seed walks
every planned step, and the step that encodes the most items is the one simulated (the peak comes from it); the mean
over the steps prices time. A generated dataset not generated yet is known from its options (`predict`): the
simulated batch is the largest its sequences allow, and an item's features come from a small copy of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.data.collate import TrainBatch, collate_train_batch
from benchmark.data.dataset import ItemFeatures, left_pad, split_leave_one_out, steps_per_epoch
from benchmark.data.loader import train_loader
from benchmark.data.noise import inject_noise
from benchmark.data.raw import RawDataset
from benchmark.formats.registry import get_format, load_raw_dataset
from benchmark.methods.registry import Method
from benchmark.methods.side_encoder import SideNetworkMethod
from benchmark.modalities.registry import states_key
from benchmark.models.towers import Tower
from benchmark.suite.config import CellConfig, DatasetConfig, TowerConfig
from benchmark.train.features import build_item_features

SAMPLE_ITEMS = 2
CACHED_STATE_DTYPE = torch.float16  # what the hidden-state caches store (data/hidden_state_store.py)


@dataclass(frozen=True)
class StepData:
    n_items: int
    train_sequences: int
    steps_per_epoch: int
    largest_batch: TrainBatch  # host tensors, features on the meta device
    mean_items: float  # items encoded per step, averaged over the planned steps
    source: str  # "read": the cell's own batches | "predicted": from a generated format's options

    @property
    def largest_items(self) -> int:
        return int(self.largest_batch.encoded_ids.numel())


def _sample(raw: RawDataset, count: int) -> RawDataset:
    """The first `count` items of `raw`, no users: enough to build an item's features."""
    return RawDataset(
        raw.source,
        raw.item_keys[:count],
        raw.titles[:count],
        [],
        [],
        {modality: paths[:count] for modality, paths in raw.media.items()},
        raw.media_folders,
        raw.media_stores,
    )


def meta_item_features(
    sample: RawDataset, n_items: int, towers: dict[str, Tower], tower_configs: dict[str, TowerConfig], method: Method
) -> ItemFeatures:
    """Every item's features as meta tensors ([n_items + 1, ...], row 0 padding); a cached method's are the
    hidden states its caches hold ([n_items + 1, kept layers, hidden], fp16)."""
    rows = n_items + 1
    if isinstance(method, SideNetworkMethod) and method.uses_cache:
        layers = method.layer_plan(towers)
        return ItemFeatures(
            {
                states_key(modality): torch.empty(
                    (rows, len(layers[modality]), tower.hidden_size), dtype=CACHED_STATE_DTYPE, device="meta"
                )
                for modality, tower in towers.items()
            }
        )
    built = build_item_features(_sample(sample, SAMPLE_ITEMS), towers, tower_configs)
    return ItemFeatures(
        {
            key: torch.empty((rows, *tensor.shape[1:]), dtype=tensor.dtype, device="meta")
            for key, tensor in built.tensors.items()
        }
    )


def can_read(dataset: DatasetConfig) -> bool:
    """Whether reading the dataset costs little: it is on disk, or a generated one exists already."""
    data_format = get_format(dataset.format)
    if data_format.predict is None:
        return True
    options = {**data_format.options, **dataset.options}
    return data_format.generated is not None and data_format.generated(options)


def step_data(
    config: CellConfig, towers: dict[str, Tower], tower_configs: dict[str, TowerConfig], method: Method
) -> StepData:
    if can_read(config.dataset):
        return _read_step_data(config, towers, tower_configs, method)
    return _predicted_step_data(config, towers, tower_configs, method)


def _read_step_data(
    config: CellConfig, towers: dict[str, Tower], tower_configs: dict[str, TowerConfig], method: Method
) -> StepData:
    train = config.train
    raw = inject_noise(load_raw_dataset(config.dataset), config.dataset.noise, config.dataset.noise_seed)
    split = split_leave_one_out(raw, train.max_seq_len)
    features = meta_item_features(raw, raw.n_items, towers, tower_configs, method)
    loader = train_loader(
        split,
        features,
        train.batch_size,
        train.unique_items,
        np.random.default_rng(config.seed),
        0,
        torch.device("cpu"),
        train.step_shapes,
    )
    per_epoch = steps_per_epoch(split, train.batch_size)
    planned = per_epoch * train.epochs
    if train.max_steps:
        planned = min(planned, train.max_steps)
    largest: TrainBatch | None = None
    total = steps = 0
    while steps < planned:
        for batch in loader:
            items = int(batch.encoded_ids.numel())
            total, steps = total + items, steps + 1
            if largest is None or items > largest.encoded_ids.numel():
                largest = batch
            if steps >= planned:
                break
    assert largest is not None  # a split always has a training sequence (split_leave_one_out refuses otherwise)
    return StepData(raw.n_items, len(split.train_sequences), per_epoch, largest, total / steps, "read")


def _predicted_step_data(
    config: CellConfig, towers: dict[str, Tower], tower_configs: dict[str, TowerConfig], method: Method
) -> StepData:
    train, dataset = config.train, config.dataset
    data_format = get_format(dataset.format)
    assert data_format.predict is not None and data_format.small_copy is not None  # can_read() said so
    options = {**data_format.options, **dataset.options}
    predicted = data_format.predict(options)
    small = load_raw_dataset(dataclasses.replace(dataset, options=data_format.small_copy(options)))
    features = meta_item_features(small, predicted.items, towers, tower_configs, method)
    # A training sequence is a user's items but the last two (validation, test), up to max_seq_len + 1 of them.
    longest = max(1, min(predicted.longest - 2, train.max_seq_len + 1))
    rows = min(train.batch_size, predicted.users)
    ids = 1 + np.arange(rows * longest) % predicted.items
    sequences = [ids[row * longest : (row + 1) * longest] for row in range(rows)]
    largest = collate_train_batch(
        left_pad(sequences, train.max_seq_len + 1),
        features,
        train.unique_items,
        train.step_shapes,
        train.batch_size,
    )
    mean_items = float(largest.encoded_ids.numel())
    if train.step_shapes == "dynamic" and predicted.mean_length is not None:
        typical = min(predicted.mean_length - 2, train.max_seq_len + 1)
        mean_items = min(mean_items, rows * max(typical, 1.0))
    per_epoch = -(-predicted.users // train.batch_size)
    return StepData(predicted.items, predicted.users, per_epoch, largest, mean_items, "predicted")
