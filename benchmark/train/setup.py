"""What the trainer and the evaluator of one cell both work on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.data.dataset import ItemFeatures, SplitDataset
from benchmark.progress import ProgressSink
from benchmark.suite.config import CellConfig
from benchmark.train.distributed.world import World
from benchmark.train.recommender import Recommender


@dataclass(frozen=True)
class TrainingSetup:
    model: Recommender  # on the device
    split: SplitDataset
    features: ItemFeatures  # what the item encoder reads (a cached method's hidden states)
    config: CellConfig
    device: torch.device
    progress: ProgressSink
    world: World | None = None  # this rank of a distributed cell (None: one process)
