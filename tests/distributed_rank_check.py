"""A rank program for tests/test_distributed.py (run by torchrun, two ranks, gloo): the first training batch's loss
and gradients of one cell, computed by the distributed step (DDP or FSDP over the ranks' shares) and by the
one-rank `training_loss` on the whole global batch; rank 0 writes how far apart they are.

Usage: torchrun --nproc-per-node 2 tests/distributed_rank_check.py SUITE METHOD STRATEGY OUT_JSON
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmark.data.dataset import split_leave_one_out
from benchmark.data.loader import train_loader
from benchmark.plan.loader import load_suite
from benchmark.results.pieces import CellRecord
from benchmark.suite.matrix import expand_cells
from benchmark.train.batches import input_preparation
from benchmark.train.cell_plan import assemble, read_data
from benchmark.train.distributed.collectives import gather_objects
from benchmark.train.distributed.world import start_world
from benchmark.train.distributed.wrap import distributed_step
from benchmark.train.loop import _build_model
from benchmark.train.precision import DTYPES


def _full(gradient: torch.Tensor | None) -> torch.Tensor | None:
    if gradient is None:
        return None
    full = getattr(gradient, "full_tensor", None)  # an FSDP-sharded gradient (DTensor)
    return full() if callable(full) else gradient


def main(suite: str, method: str, strategy: str, out: str) -> None:
    overrides = ["train.dropout=0", f"train.distributed={strategy}", "train.nproc_per_node=2"]
    config = next(
        cell.config for cell in expand_cells(load_suite(Path(suite), overrides)) if cell.config.method.name == method
    )
    data = read_data(config)
    world = start_world(config.train, data.device, data.method.distributed_strategy(strategy))
    assert world is not None
    split = split_leave_one_out(data.raw, config.train.max_seq_len)
    model, features, _, _ = _build_model(assemble(data), split, CellRecord(), set())
    reference = copy.deepcopy(model)
    train = config.train

    def first_batch(part: tuple[int, int] | None):  # the same seeded order on every rank, as the trainer draws it
        loader = train_loader(
            split,
            features,
            train.batch_size,
            train.unique_items,
            np.random.default_rng(config.seed),
            0,
            data.device,
            train.step_shapes,
            part,
        )
        return next(iter(loader))

    prepare = input_preparation(model, DTYPES[train.precision])
    shared, whole = first_batch((world.rank, world.size)), first_batch(None)
    model.eval(), reference.eval()  # no dropout: both sides draw nothing at random
    step = distributed_step(model, world, data.device, train.precision)
    loss = step(shared.sequences, prepare(shared.features), shared.encoded_ids, shared.position_index)
    loss.backward()
    gradients = {name: _full(p.grad) for name, p in model.named_parameters() if p.requires_grad}
    expected = reference.training_loss(
        whole.sequences, prepare(whole.features), whole.encoded_ids, whole.position_index
    )
    expected.backward()
    worst = 0.0
    missing = []
    # Gradients that are zero in exact arithmetic (a key projection's bias) are rounding noise on both sides: each
    # parameter's error is relative to its largest gradient, or to a thousandth of the model's, whichever is larger.
    largest = max(float(p.grad.abs().max()) for p in reference.parameters() if p.grad is not None)
    for name, p in reference.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None or gradients.get(name) is None:
            if (p.grad is None) != (gradients.get(name) is None):
                missing.append(name)
            continue
        scale = max(float(p.grad.abs().max()), 1e-3 * largest)
        worst = max(worst, float((gradients[name] - p.grad).abs().max()) / scale)
    losses = gather_objects(float(loss.detach()))
    if world.rank == 0:
        Path(out).write_text(
            json.dumps(
                {
                    "loss_ranks": losses,
                    "loss_one_rank": float(expected.detach()),
                    "worst_gradient_error": worst,
                    "gradients": len(gradients),
                    "missing": missing,
                    "rank_items": int(next(iter(shared.features.values())).shape[0]),
                    "global_items": int(whole.encoded_ids.shape[0]),
                }
            )
        )


if __name__ == "__main__":
    main(*sys.argv[1:5])
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)  # as the cell's ranks do (launch/cell_main.py): an interpreter's teardown after gloo can hang
