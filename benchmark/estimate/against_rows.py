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
from benchmark.estimate.devices import DeviceSpec, cpu_label, find_card, this_cpu
from benchmark.estimate.predict import DEFAULT_CPU_RUNTIME_GIB, CellPrediction, price
from benchmark.estimate.simulated_step import simulate_step
from benchmark.estimate.time_model import Throughput, cpu_throughput, gpu_throughput
from benchmark.results.read import read_results
from benchmark.suite.config import CellConfig
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


@dataclass(frozen=True)
class _Device:
    spec: DeviceSpec
    throughput: Throughput | None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _measured(row: dict[str, Any]) -> dict[str, float | None]:
    on_gpu = row.get("gpu_name") is not None
    return {
        "peak_alloc": _float(row.get("torch_peak_alloc_gib")) if on_gpu else None,
        "peak_process": _float(row.get("nvml_peak_process_gib") if on_gpu else row.get("cpu_peak_rss_gib")),
        "step": _float(row.get("step_ms_median")),
    }


def _row_device(row: dict[str, Any]) -> _Device | None:
    """The device a row ran on, as the estimate prices it; None for a CPU of another host."""
    name = row.get("gpu_name")
    if name is not None:
        card = find_card(str(name))
        if card is not None:
            return _Device(card, gpu_throughput(card))
        memory = _float(row.get("gpu_memory_gib")) or 0.0
        return _Device(DeviceSpec(str(name), "cuda", int(memory * GIB), None, None), None)
    if row.get("host") != socket.gethostname():
        return None
    return _Device(this_cpu(), cpu_throughput())


def _label(row: dict[str, Any]) -> str:
    name = row.get("gpu_name")
    if name is not None:
        card = find_card(str(name))
        return card.label if card is not None else str(name)
    return cpu_label(str(row.get("host")))


class RowPredictions:
    """Re-estimates of rows' configurations, each simulated once however many rows share it."""

    def __init__(self, calibration: Calibration):
        self.calibration = calibration
        self.cache: dict[tuple[str, str], CellPrediction | str] = {}

    def of(self, row: dict[str, Any], device: _Device) -> CellPrediction | str:
        key = (str(row["config_hash"]), device.spec.label)
        if key not in self.cache:
            self.cache[key] = self._estimate(row, device)
        return self.cache[key]

    def _estimate(self, row: dict[str, Any], device: _Device) -> CellPrediction | str:
        from benchmark.methods.registry import method_options

        try:
            config = CellConfig.from_dict(json.loads(str(row["config_json"])), method_options)
            step = simulate_step(config, device.spec.kind)
        except (MMBenchError, ValueError, KeyError, TypeError) as error:
            return f"{row['cell_id']}: not estimated ({error})"
        except Exception as error:  # noqa: BLE001 - a step the simulation cannot follow (cells.estimate_cell)
            return f"{row['cell_id']}: not estimated (the simulation failed: {type(error).__name__}: {error})"
        method = config.method.label or config.method.name
        return price(step, config.cell_id, method, device.spec, self.calibration, device.throughput)


def _prediction_figures(prediction: CellPrediction) -> dict[str, float | None]:
    on_gpu = prediction.peak_reserved is not None
    return {
        "peak_alloc": prediction.peak_allocated / GIB if on_gpu else None,
        "peak_process": prediction.peak_process / GIB,
        "step": prediction.step_s * 1000 if prediction.step_s is not None else None,
        "tensors": prediction.peak_allocated / GIB,  # what torch allocates (on a CPU: the tensors' peak)
    }


def _uncalibrated_figures(row: dict[str, Any], label: str) -> dict[str, float | None] | None:
    """The model's own figures from the prediction a row carries, where it was made uncalibrated on the device the
    row ran on (then nothing need be simulated again); None otherwise."""
    if row.get("predicted_calibration") != "defaults" or row.get("predicted_on") != label:
        return None
    if row.get("predicted_peak_alloc_gib") is None:
        return None
    on_gpu = row.get("predicted_peak_reserved_gib") is not None
    return {
        "peak_alloc": _float(row["predicted_peak_alloc_gib"]) if on_gpu else None,
        "peak_process": _float(row.get("predicted_peak_process_gib")),
        "step": _float(row.get("predicted_step_ms")),
        "tensors": _float(row["predicted_peak_alloc_gib"]),
    }


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
        method = str(row.get("method_label") or row["method"])
        carried = row.get("predicted_peak_process_gib") is not None and row.get("predicted_on") == _label(row)
        if carried and not estimate_again:
            predicted = {
                "peak_alloc": _float(row.get("predicted_peak_alloc_gib")) if row.get("gpu_name") else None,
                "peak_process": _float(row["predicted_peak_process_gib"]),
                "step": _float(row.get("predicted_step_ms")),
            }
            checks.append(
                RowCheck(row["cell_id"], method, str(row.get("predicted_on")), "row", predicted, _measured(row))
            )
            continue
        device = _row_device(row)
        if device is None:
            notes.append(f"{row['cell_id']}: ran on the CPU of {row.get('host')}, which cannot be priced here")
            continue
        found = again.of(row, device)
        if isinstance(found, str):
            notes.append(found)
            continue
        figures = _prediction_figures(found)
        checks.append(RowCheck(row["cell_id"], method, device.spec.label, "re-estimated", figures, _measured(row)))
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
        device = _row_device(row)
        if device is None:
            notes.append(f"{row['cell_id']}: ran on the CPU of {row.get('host')}, which cannot be priced here")
            continue
        label, method = _label(row), str(row.get("method_label") or row["method"])
        modelled = _uncalibrated_figures(row, label)
        if modelled is None:
            found = model.of(row, device)
            if isinstance(found, str):
                notes.append(found)
                continue
            modelled = _prediction_figures(found)
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
