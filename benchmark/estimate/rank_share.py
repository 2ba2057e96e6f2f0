"""A distributed cell's step as one rank sees it (`train.distributed`), for `mmbench estimate`.

The step is simulated on the rank's share of the global batch: its share of the sequences and of the encoded items
(train/distributed/step_loss.py). Then the parts the strategy changes:
- DDP keeps a whole replica (weights, gradients, optimizer state) and reduces gradients through buckets as large as
  the gradients themselves (DDP's default copies them there): the gradients count once more;
- FSDP keeps 1/N of the weights, gradients and optimizer state, and holds a block's gathered weights while it
  runs (two: the next is gathered ahead), in the precision it computes in.
What is left out, and said: the objective over the whole batch that every rank repeats (the simulation scores its
share of the users against its share of the candidates) and the time of the collectives."""

from __future__ import annotations

from torch import nn

from benchmark.data.collate import TrainBatch
from benchmark.estimate.tracker import TrackedStep
from benchmark.suite.config import TrainConfig
from benchmark.train.distributed.wrap import shard_units
from benchmark.train.precision import DTYPES

SHARDED_PARTS = ("weights", "gradients", "optimizer")
NOTE = (
    "{ranks} rank(s) ({strategy}): one rank's step simulated on its share of the batch; the objective every rank "
    "repeats over the whole batch and the collectives' time are not priced"
)


def rank_share(batch: TrainBatch, ranks: int) -> TrainBatch:
    """The first rank's share of `batch`: its rows and its slots (shapes are what the simulation needs)."""
    if ranks == 1:
        return batch
    rows = -(-int(batch.sequences.shape[0]) // ranks)
    slots = -(-int(batch.encoded_ids.shape[0]) // ranks)
    return TrainBatch(
        batch.sequences[:rows],
        batch.encoded_ids[:slots],
        batch.position_index[:rows],
        {name: tensor[:slots] for name, tensor in batch.features.items()},
        -(-batch.real_sequences // ranks),
        -(-batch.real_items // ranks),
    )


def _largest_unit_bytes(model: nn.Module, train: TrainConfig) -> int:
    """The largest block FSDP gathers whole, in the precision it computes in: a unit's own parameters, those of
    the units inside it (sharded before it) left out."""
    itemsize = DTYPES[train.precision].itemsize
    claimed: set[int] = set()
    largest = 0
    for unit in shard_units(model):
        own = [p for p in unit.parameters() if id(p) not in claimed]
        claimed.update(id(p) for p in own)
        largest = max(largest, sum(p.numel() for p in own))
    return largest * itemsize


def spread_over_ranks(step: TrackedStep, model: nn.Module, train: TrainConfig, strategy: str) -> str | None:
    """Change `step` (one rank's, simulated on its share) for the replicas or shards of `strategy` (the one the
    method trains under); the note to show."""
    ranks = train.ranks
    if train.distributed == "none":
        return None
    if strategy == "fsdp":
        removed = 0
        for part in SHARDED_PARTS:
            kept = step.at_peak.get(part, 0) // ranks
            removed += step.at_peak.get(part, 0) - kept
            step.at_peak[part] = kept
            step.largest[part] = step.largest[part] // ranks
        gathered = 2 * _largest_unit_bytes(model, train)
        step.at_peak["transient"] = step.at_peak.get("transient", 0) + gathered
        step.peak_bytes += gathered - removed
    else:
        buckets = step.largest["gradients"]
        step.at_peak["transient"] = step.at_peak.get("transient", 0) + buckets
        step.peak_bytes += buckets
    return NOTE.format(ranks=ranks, strategy=strategy)
