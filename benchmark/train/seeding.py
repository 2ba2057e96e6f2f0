"""One seed for every random number generator a cell draws from (Python, NumPy, torch): the cell and the
hidden-state cache build seed alike, so a cache built for a cell holds what that cell would compute."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
