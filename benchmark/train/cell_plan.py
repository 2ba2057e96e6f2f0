"""A cell's plan: its configuration resolved once into the objects both the cell and its hidden-state cache build
assemble from (method, device, dataset, towers, their item features), and the cache keys computed from it in one
place, so that the two processes always agree on which caches a cell trains from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.data.dataset import ItemFeatures
from benchmark.data.hidden_state_store import CacheKey
from benchmark.data.noise import inject_noise
from benchmark.data.raw import RawDataset
from benchmark.errors import CellSkipped
from benchmark.formats.registry import load_raw_dataset
from benchmark.methods.registry import Method, get_method_class
from benchmark.methods.side_encoder import SideNetworkMethod
from benchmark.modalities.registry import get_modality
from benchmark.models.quantized_base import quantize_tower, unavailable_reason
from benchmark.models.towers import Tower
from benchmark.progress import ProgressSink, phase
from benchmark.suite.config import CellConfig, TowerConfig
from benchmark.train.distributed.world import launched_rank, rank_device
from benchmark.train.features import build_towers_and_features
from benchmark.train.precision import DTYPES, resolve_device
from benchmark.train.seeding import seed_everything


def method_of(config: CellConfig) -> Method:
    """The cell's method, built with its options."""
    return get_method_class(config.method.name)(config.method.options)


@dataclass(frozen=True)
class CellData:
    """The first half of a plan: seeded, the method and device resolved, the dataset read (once per process)."""

    config: CellConfig
    method: Method
    device: torch.device
    raw: RawDataset


@dataclass(frozen=True)
class CellPlan(CellData):
    towers: dict[str, Tower]  # by modality; random weights seeded by the cell's seed
    tower_configs: dict[str, TowerConfig]
    features: ItemFeatures  # what the towers read, per item

    def cache_keys(self) -> dict[str, CacheKey]:
        return cache_keys(self.method, self.towers, self.raw, self.tower_configs, self.config.train.precision)


def cache_keys(
    method: Method, towers: dict[str, Tower], raw: RawDataset, tower_configs: dict[str, TowerConfig], precision: str
) -> dict[str, CacheKey]:
    """The hidden-state cache of each tower a cached method trains from, keyed by the tower, the dataset's contents,
    the layers the method keeps, the input shape, the precision and the pooling: the one place a key is made."""
    if not isinstance(method, SideNetworkMethod):
        raise TypeError(f"method '{method.name}' trains through its towers: it has no caches")
    layers = method.layer_plan(towers)
    return {
        modality: CacheKey(
            tower.identity,
            raw.fingerprint(),
            tuple(layers[modality]),
            get_modality(modality).input_shape(tower, tower_configs[modality]),
            precision,
            tower.pooling,
        )
        for modality, tower in towers.items()
    }


def read_data(config: CellConfig, progress: ProgressSink | None = None) -> CellData:
    """Seed, resolve the method and the device, read the dataset. A cell that cannot run here by design (a
    quantized base without CUDA) stops first, before any data is read: `CellSkipped`."""
    seed_everything(config.seed)
    method = method_of(config)
    device = resolve_device(config.train.device)
    launched = launched_rank()
    if config.train.distributed != "none" and launched is not None:
        device = rank_device(device, launched[2])  # this rank's GPU
    reason = unavailable_reason(config.method.base_precision, device)
    if reason is not None:
        raise CellSkipped(reason)
    if progress is not None:
        progress(phase("data"))
    raw = inject_noise(load_raw_dataset(config.dataset), config.dataset.noise, config.dataset.noise_seed)
    return CellData(config, method, device, raw)


def assemble(data: CellData, progress: ProgressSink | None = None) -> CellPlan:
    """The towers and the item features they read, built after the data in the same order for the cell and its
    cache build (so the same random weights)."""
    if progress is not None:
        progress(phase("towers"))
    config = data.config
    towers, tower_configs, features = build_towers_and_features(config.towers, config.seed, data.raw)
    if config.method.base_precision is not None:
        # Before the method adapts the towers (peft wraps bitsandbytes' layers in its own variants for them), on the
        # device, where the towers compute: a cached method's cell never puts its towers there (only its cache
        # build does, which quantizes them as it moves them).
        device = None if data.method.uses_cache else data.device
        for tower in towers.values():
            quantize_tower(tower, config.method.base_precision, DTYPES[config.train.precision], device)
    return CellPlan(config, data.method, data.device, data.raw, towers, tower_configs, features)
