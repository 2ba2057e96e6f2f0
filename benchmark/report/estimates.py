"""How `mmbench estimate` shows its predictions: a table per suite (peak memory and its main parts, step and epoch
time, whether the cell fits the device and each common card), the notes saying what the figures rest on, and the
same as JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from benchmark.estimate.cells import CellEstimate
from benchmark.estimate.predict import PART_NAMES, CellPrediction
from benchmark.units import GIB

FITS_MARK = {"yes": "fits", "tight": "tight", "no": "NO"}
SHORT_CARD = {"GeForce RTX 4090": "24G", "A100 40GB": "40G", "L40S": "48G", "H100 SXM": "80G", "H200 SXM": "141G"}


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f}"


def _time(prediction: CellPrediction) -> tuple[str, str]:
    if prediction.step_s is None or prediction.epoch_s is None:
        return "-", "-"
    return f"{prediction.step_s * 1000:.3g}", f"{prediction.epoch_s:.3g}"


def prediction_dict(prediction: CellPrediction) -> dict[str, Any]:
    """The prediction as `--json` gives it: a row's predicted_* columns without the prefix, the parts in GiB, and
    what the figures rest on."""
    figures = {key.removeprefix("predicted_"): value for key, value in prediction.row_columns().items()}
    figures["device"] = figures.pop("on")
    figures["parts_gib"] = {name: size / GIB for name, size in json.loads(figures.pop("parts")).items()}
    return {
        **figures,
        "device_memory_gib": prediction.memory_bytes / GIB,
        "steps_per_epoch": prediction.steps_per_epoch,
        "trainable_params": prediction.trainable_params,
        "total_params": prediction.total_params,
        "time_source": prediction.time_source,
        "data_source": prediction.data_source,
        "notes": list(prediction.notes),
    }


def estimate_dicts(cells: list[CellEstimate]) -> list[dict[str, Any]]:
    return [
        {
            "cell_id": cell.cell_id,
            "method": cell.method,
            "error": cell.error,
            "on_common_cards": cell.on_common,
            **(prediction_dict(cell.prediction) if cell.prediction is not None else {}),
        }
        for cell in cells
    ]


def estimate_table(title: str, cells: list[CellEstimate]) -> Table:
    table = Table(title=title, title_justify="left")
    headers = ["cell", "peak GiB", "weights", "grads", "optim", "activ.", "other", "step ms", "epoch s", "fits"]
    cards = list(next((cell.on_common for cell in cells if cell.on_common), {}))
    for header in headers + [SHORT_CARD.get(card, card) for card in cards]:
        table.add_column(header, justify="left" if header == "cell" else "right")
    for cell in cells:
        prediction = cell.prediction
        if prediction is None:
            table.add_row(Text(cell.cell_id), Text(f"not estimated: {cell.error}"))  # Text: a path's [..] is no markup
            continue
        parts = prediction.parts
        other = sum(parts[name] for name in PART_NAMES if name not in ("weights", "gradients", "optimizer"))
        other -= parts["saved_activations"]
        step_ms, epoch_s = _time(prediction)
        table.add_row(
            Text(cell.cell_id),
            _gib(prediction.peak_process),
            _gib(parts["weights"]),
            _gib(parts["gradients"]),
            _gib(parts["optimizer"]),
            _gib(parts["saved_activations"]),
            _gib(other),
            step_ms,
            epoch_s,
            FITS_MARK[prediction.fits],
            *[FITS_MARK[cell.on_common[card]] for card in cards],
        )
    return table


def estimate_notes(cells: list[CellEstimate]) -> list[str]:
    """What the figures rest on, said once per distinct basis."""
    notes: list[str] = []
    for cell in cells:
        if cell.prediction is None:
            continue
        prediction = cell.prediction
        for line in (
            f"device: {prediction.device}, {prediction.memory_bytes / GIB:.1f} GiB",
            f"time: {prediction.time_source}",
            "calibration: " + (prediction.calibration if prediction.calibration != "defaults" else
                               "none, defaults used (fit one: mmbench estimate calibrate RESULTS)"),
            *prediction.notes,
        ):  # fmt: skip
            if line not in notes:
                notes.append(line)
    notes.append(
        "peak: what NVML shows for the process (torch's allocated + the allocator's slack + the CUDA context; on a "
        "CPU the tensors + the runtime); other: inputs, transient, workspace, slack, context. fits: within "
        "95% of the device's memory; tight: up to 10% over; NO: over by more"
    )
    return notes
