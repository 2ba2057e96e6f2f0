"""Find or build the hidden-state caches a cached method trains from (used by `run` and `mmbench cache build`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from benchmark.data.dataset import ItemFeatures
from benchmark.data.hidden_state_store import HiddenStateCache, build_cache, building, find_cache
from benchmark.data.raw import RawDataset
from benchmark.errors import CacheMissingError
from benchmark.methods.side_network import kept_states
from benchmark.modalities.registry import get_modality
from benchmark.progress import ProgressSink, phase, step
from benchmark.suite.config import CellConfig, TowerConfig
from benchmark.train.cell_plan import CellPlan, assemble, cache_keys, method_of, read_data
from benchmark.train.precision import autocast_factory


def _kept_state_batches(
    tower: Any,
    features: ItemFeatures,
    indices: list[int],
    n_items: int,
    batch_size: int,
    autocast: Callable[[], Any],
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(item ids, kept states) for items 1..n_items, `batch_size` at a time."""
    for start in range(1, n_items + 1, batch_size):
        ids = torch.arange(start, min(start + batch_size, n_items + 1))
        inputs = {
            name: t.to(device, non_blocking=True)
            for name, t in features.gather(ids, get_modality(tower.modality).feature_keys).items()
        }
        with autocast():
            yield ids, kept_states(tower, inputs, indices)


def _step_reporter(progress: ProgressSink, total: int) -> Callable[[int], None]:
    steps = iter(range(1, total + 1))
    return lambda _count: progress(step(next(steps), total))


def find_caches(plan: CellPlan) -> dict[str, HiddenStateCache]:
    """The caches a cached cell trains from; a missing one is an error (the launcher builds them before the cell)."""
    caches = {}
    for modality, key in plan.cache_keys().items():
        cache = find_cache(key)
        if cache is None:
            raise CacheMissingError(
                f"no hidden-state cache for the {modality} tower '{plan.towers[modality].preset_name}' "
                f"(key {key.digest}): `mmbench run` builds it in its own process before the cell; "
                f"outside a run, use `mmbench cache build SUITE`"
            )
        caches[modality] = cache
    return caches


def ensure_caches(
    method: Any,
    towers: dict[str, Any],
    raw: RawDataset,
    features: ItemFeatures,
    tower_configs: dict[str, TowerConfig],
    precision: str,
    device: torch.device,
    batch_size: int,
    progress: ProgressSink,
) -> dict[str, tuple[HiddenStateCache, bool]]:
    """{modality: (cache, built_now)}. A missing cache is built with the tower on `device`, which leaves it
    afterwards."""
    from benchmark.profile.environment import hardware_identity

    caches = {}
    plan = method.layer_plan(towers)
    for modality, key in cache_keys(method, towers, raw, tower_configs, precision).items():
        tower, indices = towers[modality], plan[modality]
        with building(key):
            cache = find_cache(key)
            if cache is not None:
                caches[modality] = (cache, False)
                continue
            total = -(-raw.n_items // batch_size)
            progress(phase(f"cache {modality}", total))
            tower.to(device).eval()
            batches = _kept_state_batches(
                tower, features, indices, raw.n_items, batch_size, autocast_factory(precision, device), device
            )
            cache = build_cache(
                key,
                raw.n_items,
                len(indices),
                tower.hidden_size,
                batches,
                _step_reporter(progress, total),
                hardware_identity(device),
            )
            tower.to("cpu")
            caches[modality] = (cache, True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return caches


def ensure_cell_caches(config: CellConfig, progress: ProgressSink) -> dict[str, tuple[HiddenStateCache, bool]]:
    """Find or build every cache one cell's method trains from (nothing for uncached methods), from the same plan
    the cell assembles."""
    if not method_of(config).uses_cache:
        return {}
    plan = assemble(read_data(config))
    return ensure_caches(
        plan.method,
        plan.towers,
        plan.raw,
        plan.features,
        plan.tower_configs,
        config.train.precision,
        plan.device,
        config.eval.item_batch_size,
        progress,
    )


def cache_origin(cache: HiddenStateCache, built_now: set[str], device: torch.device) -> str:
    """'built' (for this cell, by its launcher), 'reused' (built earlier on this hardware) or
    'reused_other_hardware'."""
    from benchmark.profile.environment import hardware_identity

    if cache.digest in built_now:
        return "built"
    return "reused" if cache.built_on == hardware_identity(device) else "reused_other_hardware"
