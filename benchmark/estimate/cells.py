"""Estimates for a list of cells: each cell's step simulated once, priced on the device it is asked about and checked
against the common cards' memory. A cell that cannot be simulated gets its reason instead of figures; the others go
on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from benchmark.errors import MMBenchError
from benchmark.estimate.calibration import Calibration
from benchmark.estimate.devices import (
    DeviceSpec,
    card_names,
    common_cards,
    find_card,
    gpu_spec,
    memory_only,
    this_cpu,
    visible_gpu,
    visible_gpus,
)
from benchmark.estimate.predict import CellPrediction, price
from benchmark.estimate.prediction_cache import cached_prediction, keep_prediction, prediction_key
from benchmark.estimate.simulated_step import simulate_step
from benchmark.estimate.time_model import Throughput, cpu_throughput, gpu_throughput
from benchmark.suite.matrix import Cell

REFERENCE_CARD = "H100 SXM"  # what a GPU cell is priced on when neither a device is named nor one is visible


class UnknownDeviceError(MMBenchError):
    """--device names no card of the table."""


@dataclass(frozen=True)
class Target:
    device: DeviceSpec
    throughput: Throughput | None
    why: str  # how the device was chosen


@dataclass(frozen=True)
class CellEstimate:
    cell_id: str
    method: str
    prediction: CellPrediction | None
    on_common: dict[str, str]  # card label -> yes | tight | no
    error: str | None = None


def resolve_target(device_name: str | None, memory_gib: float | None, cell_device: str) -> Target:
    """The device to price on: the one named (a tabled card, or "cpu"), a memory size, else the cell's own (this CPU;
    the visible GPU; without one, the reference card)."""
    if memory_gib is not None:
        device = memory_only(memory_gib)
        return Target(device, None, f"a GPU of {memory_gib:g} GiB (--memory)")
    if device_name is not None:
        if device_name.lower() == "cpu":
            return Target(this_cpu(), cpu_throughput(), "this CPU (--device cpu)")
        card = find_card(device_name)
        if card is None:
            raise UnknownDeviceError(
                f"--device '{device_name}': no such card in the table ({', '.join(card_names())}, or cpu); "
                "name a memory size with --memory GIB instead"
            )
        return Target(card, gpu_throughput(card), f"{card.label} (--device)")
    if cell_device == "cpu":
        return Target(this_cpu(), cpu_throughput(), "this CPU (the suite's device)")
    visible = visible_gpu()
    if visible is not None:
        return _gpu_target(*visible, f"{visible[0]} (visible here)")
    if cell_device == "auto":
        return Target(this_cpu(), cpu_throughput(), "this CPU (device auto, no GPU visible)")
    card = find_card(REFERENCE_CARD)
    assert card is not None
    return Target(card, gpu_throughput(card), f"{REFERENCE_CARD} (no GPU visible here; --device to choose)")


def _gpu_target(name: str, memory_bytes: int, why: str) -> Target:
    """A GPU by its name, priced where it is tabled (a card outside the table gets no time)."""
    device = gpu_spec(name, memory_bytes)
    return Target(device, gpu_throughput(device), why if device.peak is not None else f"{why}, not in the table")


def estimate_cell(cell: Cell, target: Target, calibration: Calibration, common: bool = True) -> CellEstimate:
    """`cell` priced on `target` (with `common`: and whether it fits each common card)."""
    method = cell.config.method.label or cell.config.method.name
    try:
        step = simulate_step(cell.config, target.device.kind)
    except MMBenchError as error:
        return CellEstimate(cell.cell_id, method, None, {}, str(error))
    except Exception as error:  # noqa: BLE001 - e.g. a plug-in's operator without a fake-tensor form
        # A step the simulation cannot follow is this cell's answer ("not estimated", with why), never the end of
        # an estimate or of a run: the cell itself runs as it would have.
        return CellEstimate(cell.cell_id, method, None, {}, f"the simulation failed: {type(error).__name__}: {error}")
    prediction = price(step, cell.cell_id, method, target.device, calibration, target.throughput)
    on_common = {}
    if common and target.device.kind == "cuda":
        for card in common_cards():
            on_common[card.label] = price(step, cell.cell_id, method, card, calibration, None).fits
    return CellEstimate(cell.cell_id, method, prediction, on_common)


def run_target(cell_device: str) -> Target | None:
    """The device a cell of `mmbench run` on this machine will train on, as the estimate knows it: this CPU, or the
    GPU device `cuda` means to it (the first CUDA_VISIBLE_DEVICES names, else the first; a card of the table or one
    known by its memory); None for device cuda where no GPU is visible."""
    if cell_device == "cpu":
        return Target(this_cpu(), cpu_throughput(), "this CPU")
    visible = visible_gpus()
    if not visible:
        return Target(this_cpu(), cpu_throughput(), "this CPU (device auto)") if cell_device == "auto" else None
    return _gpu_target(*visible[0], visible[0][0])


def predict_for_run(cells: list[Cell], calibration: Calibration) -> tuple[list[Cell], list[str]]:
    """The cells with their predictions on the device each will run on (`Cell.prediction`, row columns), and a
    note for each cell that could not be predicted (it runs all the same)."""
    targets: dict[str, Target | None] = {}
    predicted: list[Cell] = []
    notes: list[str] = []
    for cell in cells:
        device = cell.config.train.device
        if device not in targets:
            targets[device] = run_target(device)
        target = targets[device]
        if target is None:
            predicted.append(cell)
            continue
        key = prediction_key(cell.config, target.device, calibration)
        columns = cached_prediction(key)
        if columns is None:
            found = estimate_cell(cell, target, calibration, common=False)
            if found.prediction is None:
                notes.append(f"{cell.cell_id}: not predicted ({found.error})")
                predicted.append(cell)
                continue
            columns = found.prediction.row_columns()
            keep_prediction(key, columns)
        predicted.append(dataclasses.replace(cell, prediction=columns))
    return predicted, notes
