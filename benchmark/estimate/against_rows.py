"""Predictions set against measured rows: `mmbench estimate --check RESULTS` (each row's error, each method's median
and worst) and `mmbench estimate calibrate RESULTS` (the factors that make the model agree with the rows).

A row made since the estimate existed carries its prediction; an older one is estimated again from its own
configuration (the row's JSON), priced on the device it ran on. A CPU row can only be priced on this CPU: rows from
other hosts are left out, and said so.
"""

from __future__ import annotations

import json
import socket
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import MMBenchError
from benchmark.estimate.calibration import DEFAULT_CONTEXT_GIB, Calibration, DeviceCalibration
from benchmark.estimate.cells import Target, estimate_cell
from benchmark.estimate.devices import cpu_label, gpu_spec, this_cpu
from benchmark.estimate.predict import DEFAULT_CPU_RUNTIME_GIB, CellPrediction
from benchmark.estimate.time_model import cpu_throughput, gpu_throughput
from benchmark.results.read import read_results
from benchmark.suite.config import CellConfig
from benchmark.suite.matrix import Cell
from benchmark.units import GIB

FIGURES = ("peak_alloc", "peak_process", "step")


@dataclass(frozen=True)
class RowCheck:
    cell_id: str
    method: str
    device: str
    source: str  # "row": the prediction it carries | "re-estimated" from its configuration
    predicted: dict[str, float | None]  # peak_alloc (GiB), peak_process (GiB), step (ms)
    measured: dict[str, float | None]

    def error(self, figure: str) -> float | None:
        """Signed relative error (positive: over-predicted); None where a side is missing."""
        predicted, measured = self.predicted.get(figure), self.measured.get(figure)
        if predicted is None or measured is None or measured <= 0:
            return None
        return predicted / measured - 1.0


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _measured(row: dict[str, Any]) -> dict[str, float | None]:
    on_gpu = row.get("gpu_name") is not None
    return {
        "peak_alloc": _float(row.get("torch_peak_alloc_gib")) if on_gpu else None,
        "peak_process": _float(row.get("nvml_peak_process_gib") if on_gpu else row.get("cpu_peak_rss_gib")),
        "step": _float(row.get("step_ms_median")),
    }


def _row_device(row: dict[str, Any]) -> Target | None:
    """The device a row ran on, as the estimate prices it; None for a CPU of another host."""
    name = row.get("gpu_name")
    if name is not None:
        device = gpu_spec(str(name), int((_float(row.get("gpu_memory_gib")) or 0.0) * GIB))
        return Target(device, gpu_throughput(device), "the row's GPU")
    if row.get("host") != socket.gethostname():
        return None
    return Target(this_cpu(), cpu_throughput(), "the row's CPU, this one")


def _label(row: dict[str, Any]) -> str:
    """The label of the device a row ran on, as predictions and calibrations name it."""
    name = row.get("gpu_name")
    return gpu_spec(str(name), 0).label if name is not None else cpu_label(str(row.get("host")))


class RowPredictions:
    """Re-estimates of rows' configurations, each simulated once however many rows share it."""

    def __init__(self, calibration: Calibration):
        self.calibration = calibration
        self.cache: dict[tuple[str, str], CellPrediction | str] = {}

    def of(self, row: dict[str, Any], target: Target) -> CellPrediction | str:
        key = (str(row["config_hash"]), target.device.label)
        if key not in self.cache:
            self.cache[key] = self._estimate(row, target)
        return self.cache[key]

    def _estimate(self, row: dict[str, Any], target: Target) -> CellPrediction | str:
        from benchmark.methods.registry import method_options

        try:
            config = CellConfig.from_dict(json.loads(str(row["config_json"])), method_options)
        except (MMBenchError, ValueError, KeyError, TypeError) as error:
            return f"{row['cell_id']}: not estimated ({error})"
        found = estimate_cell(Cell(config.cell_id, config), target, self.calibration, common=False)
        return found.prediction if found.prediction is not None else f"{row['cell_id']}: not estimated ({found.error})"


def _prediction_figures(prediction: CellPrediction) -> dict[str, float | None]:
    on_gpu = prediction.peak_reserved is not None
    return {
        "peak_alloc": prediction.peak_allocated / GIB if on_gpu else None,
        "peak_process": prediction.peak_process / GIB,
        "step": prediction.step_s * 1000 if prediction.step_s is not None else None,
        "tensors": prediction.peak_allocated / GIB,  # what torch allocates (on a CPU: the tensors' peak)
    }


def _carried_figures(row: dict[str, Any]) -> dict[str, float | None] | None:
    """The figures of the prediction a row carries, where it was made for the device the row ran on; else None."""
    if row.get("predicted_peak_alloc_gib") is None or row.get("predicted_on") != _label(row):
        return None
    on_gpu = row.get("predicted_peak_reserved_gib") is not None
    return {
        "peak_alloc": _float(row["predicted_peak_alloc_gib"]) if on_gpu else None,
        "peak_process": _float(row.get("predicted_peak_process_gib")),
        "step": _float(row.get("predicted_step_ms")),
        "tensors": _float(row["predicted_peak_alloc_gib"]),
    }


def _row_figures(
    row: dict[str, Any], model: RowPredictions, use_carried: bool
) -> tuple[dict[str, float | None], str] | str:
    """(figures, "row" | "re-estimated") of a row's prediction: the one it carries (with `use_carried`), else its
    configuration estimated again on its device; a note where neither can be had."""
    carried = _carried_figures(row) if use_carried else None
    if carried is not None:
        return carried, "row"
    device = _row_device(row)
    if device is None:
        return f"{row['cell_id']}: ran on the CPU of {row.get('host')}, which cannot be priced here"
    found = model.of(row, device)
    return (_prediction_figures(found), "re-estimated") if not isinstance(found, str) else found


def _ok_rows(results: Path) -> Iterator[dict[str, Any]]:
    rows, _ = read_results(results)
    if rows.is_empty():
        raise MMBenchError(f"{results}: no result rows")
    yield from rows.filter(rows["status"] == "ok").iter_rows(named=True)


def check_rows(
    results: Path, calibration: Calibration, estimate_again: bool = False
) -> tuple[list[RowCheck], list[str]]:
    """Every ok row's prediction against its measurement: the prediction the row carries where it was made for the
    device the row ran on, else (or with `estimate_again`: to see what `calibration` does) estimated again from the
    row's configuration; notes on rows left out."""
    checks: list[RowCheck] = []
    notes: list[str] = []
    again = RowPredictions(calibration)
    for row in _ok_rows(results):
        found = _row_figures(row, again, use_carried=not estimate_again)
        if isinstance(found, str):
            notes.append(found)
            continue
        figures, source = found
        method = str(row.get("method_label") or row["method"])
        checks.append(RowCheck(row["cell_id"], method, _label(row), source, figures, _measured(row)))
    return checks, notes


def summarize(checks: list[RowCheck]) -> dict[str, dict[str, dict[str, float | int]]]:
    """Per method, per figure: rows, median and worst absolute error, and the most under-predicted (signed)."""
    summary: dict[str, dict[str, dict[str, float | int]]] = {}
    for method in sorted({check.method for check in checks}):
        figures: dict[str, dict[str, float | int]] = {}
        for figure in FIGURES:
            errors = [e for check in checks if check.method == method for e in [check.error(figure)] if e is not None]
            if errors:
                figures[figure] = {
                    "rows": len(errors),
                    "median_abs": statistics.median(abs(e) for e in errors),
                    "worst_abs": max(abs(e) for e in errors),
                    "most_under": min(errors),
                }
        summary[method] = figures
    return summary


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fit_calibration(results: Path) -> tuple[Calibration, list[str]]:
    """Per device, the time factor of each method and the memory relations, from every ok row of `results`
    against the uncalibrated model."""
    model = RowPredictions(Calibration())
    notes: list[str] = []
    samples: dict[str, dict[str, list[float]]] = {}
    for row in _ok_rows(results):
        # A row's own prediction is the model's figure where it was made uncalibrated; else estimated again.
        found = _row_figures(row, model, use_carried=row.get("predicted_calibration") == "defaults")
        if isinstance(found, str):
            notes.append(found)
            continue
        modelled, _ = found
        label, method = _label(row), str(row.get("method_label") or row["method"])
        mine = samples.setdefault(label, {})
        measured = _measured(row)
        if modelled["step"] and measured["step"]:
            mine.setdefault(f"time:{method}", []).append(measured["step"] / modelled["step"])
        alloc, reserved = _float(row.get("torch_peak_alloc_gib")), _float(row.get("torch_peak_reserved_gib"))
        process, modelled_alloc = measured["peak_process"], modelled["tensors"]
        if modelled["peak_alloc"] is not None and alloc and reserved and process is not None and modelled_alloc:
            mine.setdefault("allocated_ratio", []).append(alloc / modelled_alloc)
            mine.setdefault("reserved_ratio", []).append(reserved / alloc)
            mine.setdefault("context_gib", []).append(process - reserved)
        elif modelled["peak_alloc"] is None and process is not None and modelled_alloc is not None:
            mine.setdefault("context_gib", []).append(process - modelled_alloc)
    devices = {}
    for label, values in samples.items():
        times = {key.removeprefix("time:"): v for key, v in values.items() if key.startswith("time:")}
        defaults = DeviceCalibration(
            context_gib=DEFAULT_CPU_RUNTIME_GIB if label.startswith("cpu ") else DEFAULT_CONTEXT_GIB
        )
        allocated, reserved = _median(values.get("allocated_ratio", [])), _median(values.get("reserved_ratio", []))
        context = _median(values.get("context_gib", []))
        devices[label] = DeviceCalibration(
            time_factor={method: statistics.median(v) for method, v in times.items()},
            time_rows={method: len(v) for method, v in times.items()},
            allocated_ratio=allocated if allocated is not None else defaults.allocated_ratio,
            reserved_ratio=max(reserved, 1.0) if reserved is not None else defaults.reserved_ratio,
            context_gib=max(context, 0.0) if context is not None else defaults.context_gib,
            memory_rows=len(values.get("context_gib", [])),
        )
    return Calibration(devices, "", (str(results),)), notes
