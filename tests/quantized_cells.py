"""Cells on a quantized base, run on the CPU with bitsandbytes on the path (tests/test_quantized_base.py starts this
in its own process: peft decides at import whether bitsandbytes exists).

mmbench skips a quantized base on a CPU by design; here that gate is opened, because bitsandbytes quantizes and
computes on a CPU too, which is enough to check what the GPU path builds: the layers, their byte counts, peft's
quantized forms, the cache key. Usage: python tests/quantized_cells.py SUITE_YAML OUT_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import benchmark.train.cell_plan as cell_plan
from benchmark.errors import SuiteError
from benchmark.models.quantized_base import quantize_linears
from benchmark.plan.loader import load_suite
from benchmark.profile.static_memory import static_memory
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import expand_cells
from benchmark.train.hidden_state_build import ensure_cell_caches
from benchmark.train.loop import run_cell

COLUMNS = ("trainable_params", "total_params", "weights_frozen_bytes", "weights_trainable_bytes", "train_loss")


def _layer_bytes(base_precision: str) -> int:
    """Frozen bytes of one 256 -> 512 linear layer (no bias), quantized on the CPU and run forward once."""
    model = torch.nn.Sequential(torch.nn.Linear(256, 512, bias=False))
    quantize_linears(model, base_precision, torch.float32, torch.device("cpu"))
    model(torch.randn(4, 256))  # an int8 layer hands its row scales to its matmul state here
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    return static_memory(model, optimizer).weights_frozen_bytes


def main(suite_path: str, out_path: str) -> None:
    cell_plan.unavailable_reason = lambda base_precision, device: None  # the CPU gate, opened for this check
    report: dict[str, object] = {"layer_bytes": {p: _layer_bytes(p) for p in ("nf4", "int8")}}
    try:
        load_suite(Path(suite_path).with_name("refused.yaml"))
    except SuiteError as error:
        report["refused"] = error.problems
    rows = {}
    for cell in expand_cells(load_suite(suite_path)):
        caches = ensure_cell_caches(cell.config, lambda event: None)
        row = empty_row()
        run_cell(cell.config, row, lambda event: None, built_caches={cache.digest for cache, _ in caches.values()})
        rows[cell.config.method.label] = {column: row[column] for column in COLUMNS} | {
            "cache_keys": sorted(cache.digest for cache, _ in caches.values())
        }
    report["rows"] = rows
    Path(out_path).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
