"""A cell's row, begun and finished in one place for every writer: the cell process (which fills the measured
columns in between) and the launcher (a cell that crashed, timed out or was killed before writing its own).
No torch needed: the launcher uses it too."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from benchmark import __version__
from benchmark.results.schema import empty_row
from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import config_hash, config_id


def describe_cell(config: CellConfig, row: dict[str, Any]) -> None:
    towers = config.towers
    row.update(
        suite=config.suite,
        cell_id=config.cell_id,
        config_json=json.dumps(config.to_dict(), sort_keys=True),
        config_hash=config_hash(config),
        config_id=config_id(config),
        repeat=config.repeat,
        dataset=config.dataset.name,
        towers=towers.name,
        # Every modality's preset, plug-ins' included (readers see a `<modality>_tower` column per modality).
        tower_presets=json.dumps({modality: tower.preset for modality, tower in towers.by_modality.items()}),
        tower_weights=json.dumps(
            {
                modality: tower.weights if tower.revision is None else f"{tower.weights}@{tower.revision}"
                for modality, tower in towers.by_modality.items()
            }
        ),
        method=config.method.name,
        method_label=config.method.label,
        base_precision=config.method.base_precision,
        precision=config.train.precision,
        batch_size=config.train.batch_size,
        max_seq_len=config.train.max_seq_len,
        seed=config.seed,
        warmup_steps=config.train.warmup_steps,
        world_size=config.train.ranks,
        distributed=config.train.distributed if config.train.distributed != "none" else None,
    )


def begin_row(
    config: CellConfig, run_id: str, device_lock: str, start_time: dt.datetime, placement: dict[str, Any]
) -> dict[str, Any]:
    """Every column empty but what is known before the cell runs: its description, its run, where it was placed
    (`placement`: the launcher's placement columns) and when it started."""
    row = empty_row()
    describe_cell(config, row)
    row.update(placement)
    row.update(run_id=run_id, mmbench_version=__version__, device_lock=device_lock, start_time=start_time)
    return row


def finish_row(row: dict[str, Any], status: str, error: str | None) -> dict[str, Any]:
    """The outcome and the end time: the last columns a row gets, whoever writes it."""
    row.update(status=status, error=error, end_time=dt.datetime.now(dt.timezone.utc))
    return row
