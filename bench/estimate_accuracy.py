"""How close `mmbench estimate`'s memory parts come to torch's own memory profile, on this CPU.

For every cell of the suites named (default: the smoke suite and suites/estimate-check.yaml), the cell's real model
is built and trains two steps on the batch the estimate simulated (the cell's largest), under torch.profiler with
`profile_memory`; torch's memory profile (torch.profiler._memory_profiler, what `export_memory_timeline` draws)
puts every tensor in a category. The estimate's weights + gradients + optimizer state + saved activations are set
against the largest size of PARAMETER, GRADIENT, OPTIMIZER_STATE and ACTIVATION there, and the totals' error printed
per cell, with the median and worst per method.

Usage: python -m bench.estimate_accuracy [SUITE ...] [--only GLOB] [--json PATH]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import statistics
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmark.data.collate import TrainBatch
from benchmark.data.dataset import split_leave_one_out
from benchmark.estimate.simulated_step import SimulatedStep, simulate_step
from benchmark.plan.loader import load_suite
from benchmark.progress import ProgressEvent
from benchmark.results.pieces import CellRecord
from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import expand_cells
from benchmark.train.batches import input_preparation
from benchmark.train.cell_plan import assemble, read_data
from benchmark.train.hidden_state_build import ensure_cell_caches
from benchmark.train.loop import _build_model
from benchmark.train.precision import DTYPES, autocast_factory
from benchmark.train.trainer import training_optimizer

DEFAULT_SUITES = ("suites/smoke.yaml", "suites/estimate-check.yaml")
# torch's categories and the estimate's parts they answer to
COMPARED = {
    "PARAMETER": "weights",
    "GRADIENT": "gradients",
    "OPTIMIZER_STATE": "optimizer",
    "ACTIVATION": "activations",
}


@dataclass(frozen=True)
class Comparison:
    cell_id: str
    method: str
    predicted: dict[str, int]
    measured: dict[str, int]

    @property
    def predicted_total(self) -> int:
        return sum(self.predicted.values())

    @property
    def measured_total(self) -> int:
        return sum(self.measured.values())

    @property
    def error(self) -> float:
        """Signed relative error of the total: positive over-predicts."""
        return self.predicted_total / self.measured_total - 1.0


def _quiet(event: ProgressEvent) -> None:
    return None


def _largest_category_bytes(profiled: profile) -> Counter[str]:
    """The largest size each category of torch's memory profile reached over the profiled steps."""
    from torch.profiler._memory_profiler import Action

    memory = profiled._memory_profile()
    live: Counter[str] = Counter()
    largest: Counter[str] = Counter()
    for _, action, (key, version), size in memory.timeline:
        category = memory._categories.get(key, version)
        name = category.name if category is not None else "UNKNOWN"
        if action == Action.INCREMENT_VERSION:
            before = memory._categories.get(key, version - 1)
            live[before.name if before is not None else "UNKNOWN"] -= size
            live[name] += size
        elif action in (Action.CREATE, Action.PREEXISTING):
            live[name] += size
        elif action == Action.DESTROY:
            live[name] -= size
        for part, bytes_now in live.items():
            largest[part] = max(largest[part], bytes_now)
    return largest


def measure(config: CellConfig, batch: TrainBatch) -> dict[str, int]:
    """torch's memory profile of the real cell's first two steps on `batch` (host ids; features taken from the
    cell's own item features)."""
    ensure_cell_caches(config, _quiet)
    data = read_data(config)
    split = split_leave_one_out(data.raw, config.train.max_seq_len)
    model, features, _, _ = _build_model(assemble(data), split, CellRecord(), set())
    model.train()
    train = config.train
    real = TrainBatch(
        batch.sequences,
        batch.encoded_ids,
        batch.position_index,
        {key: tensor[batch.encoded_ids] for key, tensor in features.tensors.items()},
        batch.real_sequences,
        batch.real_items,
    )
    prepare = input_preparation(model, DTYPES[train.precision])
    autocast = autocast_factory(train.precision, torch.device("cpu"))
    optimizer = training_optimizer(model, train, torch.device("cpu"))
    ready = [TrainBatch(real.sequences, real.encoded_ids, real.position_index, prepare(dict(real.features)),
                        real.real_sequences, real.real_items) for _ in range(2)]  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as run:
        for step in ready:
            with autocast():
                loss = model.training_loss(step.sequences, step.features, step.encoded_ids, step.position_index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    largest = _largest_category_bytes(run)
    return {part: int(largest[category]) for category, part in COMPARED.items()}


def compare(config: CellConfig, cell_id: str) -> Comparison:
    simulated: SimulatedStep = simulate_step(config, "cpu")
    predicted = {
        "weights": simulated.weights_bytes,
        "gradients": simulated.gradient_bytes,
        "optimizer": simulated.optimizer_bytes,
        "activations": simulated.activation_bytes,
    }
    return Comparison(
        cell_id, config.method.label or config.method.name, predicted, measure(config, simulated.data.largest_batch)
    )


def compare_suites(suites: list[str], only: str | None = None) -> list[Comparison]:
    found = []
    for suite_path in suites:
        for cell in expand_cells(load_suite(suite_path, check_data=False)):
            if only is None or fnmatch.fnmatch(cell.cell_id, only):
                found.append(compare(cell.config, cell.cell_id))
    return found


def _print(comparisons: list[Comparison]) -> None:
    for item in comparisons:
        parts = "  ".join(
            f"{part} {item.predicted[part] / 2**20:.2f}/{item.measured[part] / 2**20:.2f}" for part in item.predicted
        )
        print(f"{item.cell_id:60s} {item.error * 100:+6.2f}%   (MiB predicted/torch) {parts}")
    by_method: dict[str, list[float]] = {}
    for item in comparisons:
        by_method.setdefault(item.method, []).append(abs(item.error) * 100)
    for method, errors in sorted(by_method.items()):
        print(f"{method:24s} cells {len(errors):2d}  median |error| {statistics.median(errors):5.2f}%  "
              f"worst {max(errors):5.2f}%")  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.estimate_accuracy")
    parser.add_argument("suites", nargs="*", default=list(DEFAULT_SUITES))
    parser.add_argument("--only", default=None, help="cell id glob")
    parser.add_argument("--json", type=Path, default=None, help="write every comparison here")
    arguments = parser.parse_args(argv)
    comparisons = compare_suites(arguments.suites, arguments.only)
    _print(comparisons)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps([asdict(item) | {"error": item.error} for item in comparisons], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
