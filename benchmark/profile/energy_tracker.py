"""The device's energy over the measured training steps, from NVML's cumulative counter.

Counting begins at the first measured step (`begin`), not when the tracker is entered: warm-up is not measured.
No counter (a CPU cell, a MIG slice, a device without one) leaves energy null, never 0.
"""

from __future__ import annotations

import torch

from benchmark.profile.nvml import NvmlDevice, energy_millijoules
from benchmark.profile.timers import synchronize
from benchmark.profile.tracker import Tracker
from benchmark.results.pieces import Energy


class EnergyTracker(Tracker[Energy]):
    def __init__(self, device: torch.device, nvml_device: NvmlDevice | None):
        super().__init__()
        self.device = device
        self.nvml_device = nvml_device
        self.energy_mj = 0
        self._since: int | None = None
        self.measuring = False

    def _read(self) -> int | None:
        # A MIG slice shares the physical GPU's counter with every other slice: not this cell's energy.
        if self.nvml_device is None or not self.nvml_device.energy_available:
            return None
        synchronize(self.device)
        return energy_millijoules(self.nvml_device.nvml, self.nvml_device.handle)

    def start(self) -> None:
        self.energy_mj, self._since, self.measuring = 0, None, False

    def begin(self) -> None:
        """Called before the first measured (post-warm-up) step."""
        self._since = self._read()
        self.measuring = self._since is not None

    def pause(self) -> None:
        if self.measuring and self._since is not None:
            now = self._read()
            if now is not None:
                self.energy_mj += now - self._since
        self._since = None

    def resume(self) -> None:
        if self.measuring:
            self._since = self._read()

    def stop(self) -> Energy:
        self.pause()
        return Energy(self.energy_mj / 1000.0 if self.measuring else None)
