"""Calibration of the estimate from measured rows: per device, a time factor per method (measured step time over
the time model's) and how the device's memory figures relate to the simulated peak (torch's allocated over the
prediction, reserved over allocated, the CUDA context as NVML's process figure minus reserved).

The file is small JSON; `mmbench estimate calibrate RESULTS` writes it, a suite points at it with
`run.estimate_calibration`, the environment with MMBENCH_ESTIMATE_CALIBRATION. Without one, the defaults below are
used and every estimate says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import MMBenchError

CALIBRATION_ENV = "MMBENCH_ESTIMATE_CALIBRATION"
FORMAT_VERSION = 1

# Without calibration: torch's allocator adds ~5% of reserved-but-free blocks to a training step's peak; the CUDA
# context with the kernels and libraries torch loads lazily holds ~0.5 GiB outside it.
DEFAULT_RESERVED_RATIO = 1.05
DEFAULT_CONTEXT_GIB = 0.5


class CalibrationError(MMBenchError):
    """A calibration file that cannot be read (named)."""


@dataclass(frozen=True)
class DeviceCalibration:
    time_factor: dict[str, float] = field(default_factory=dict)  # method label -> measured / modelled step time
    time_rows: dict[str, int] = field(default_factory=dict)
    allocated_ratio: float = 1.0  # torch peak allocated / predicted
    reserved_ratio: float = DEFAULT_RESERVED_RATIO  # torch peak reserved / allocated
    context_gib: float = DEFAULT_CONTEXT_GIB  # NVML process peak - torch peak reserved
    memory_rows: int = 0

    def factor(self, method: str) -> tuple[float, str]:
        """The method's time factor and where it comes from; the median over methods for one not fitted."""
        if method in self.time_factor:
            return self.time_factor[method], f"fitted on {self.time_rows.get(method, 0)} row(s)"
        if self.time_factor:
            values = sorted(self.time_factor.values())
            return values[len(values) // 2], "the median of the fitted methods' (this method has no row)"
        return 1.0, "none (not calibrated)"


@dataclass(frozen=True)
class Calibration:
    devices: dict[str, DeviceCalibration] = field(default_factory=dict)
    source: str = ""  # the file, or "" for the defaults
    fitted_from: tuple[str, ...] = ()

    def for_device(self, label: str) -> DeviceCalibration | None:
        return self.devices.get(label)

    def to_json(self) -> str:
        body = {
            "mmbench_estimate_calibration": FORMAT_VERSION,
            "fitted_from": list(self.fitted_from),
            "devices": {label: asdict(device) for label, device in sorted(self.devices.items())},
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"


def read_calibration(path: Path) -> Calibration:
    try:
        body: Any = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CalibrationError(f"{path}: cannot read the estimate calibration: {error}") from error
    if not isinstance(body, dict) or body.get("mmbench_estimate_calibration") != FORMAT_VERSION:
        raise CalibrationError(
            f"{path}: not an estimate calibration of format {FORMAT_VERSION} (write one with "
            "`mmbench estimate calibrate RESULTS --out FILE`)"
        )
    try:
        devices = {label: DeviceCalibration(**values) for label, values in dict(body["devices"]).items()}
    except (TypeError, ValueError, KeyError) as error:
        raise CalibrationError(f"{path}: a device entry is malformed: {error}") from error
    return Calibration(devices, str(path), tuple(body.get("fitted_from", ())))


def find_calibration(named: str | None) -> Calibration:
    """The calibration a suite names, else the environment's, else none (the defaults)."""
    chosen = named or os.environ.get(CALIBRATION_ENV)
    return read_calibration(Path(chosen)) if chosen else Calibration()
