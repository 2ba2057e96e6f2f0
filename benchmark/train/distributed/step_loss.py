"""The training loss of a distributed cell, equal to the one-rank loss of the same global batch.

Every rank holds the whole global batch's ids (sequences, encoded ids, position index: a few kilobytes) but the
features of its own equal share of the encoded items only (data/collate.py). A step: each rank encodes its share of
the items (the towers: the expensive part, split N ways), the shares are gathered into the batch's candidate
vectors; each rank runs the user encoder over its share of the sequences, and those outputs are gathered too. Every
rank then computes the same objective over the whole batch — in-batch negatives stay the batch's, not the rank's —
so the loss is the one-rank loss. Its gradient reaches each rank's share through the gathers (summed over the
ranks, that is N times the share's gradient), and DDP or FSDP averages the ranks' gradients: the result is the
one-rank gradient. The objective's own work (scores against all candidates) is repeated on every rank; it is small
beside the towers. Random draws inside the step (dropout, sampled negatives) come from each rank's generator, seeded
alike.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.train.distributed.collectives import gather_rows, gather_rows_plain, share
from benchmark.train.distributed.world import World
from benchmark.train.recommender import Recommender, SequenceOutputs


class DistributedStepLoss(nn.Module):
    """`Recommender.training_loss` over the ranks; the module DDP or FSDP wraps (its `forward` is the step)."""

    def __init__(self, recommender: Recommender, world: World):
        super().__init__()
        self.recommender = recommender
        self.rank, self.ranks = world.rank, world.size

    def forward(
        self,
        sequences: torch.Tensor,
        item_features: dict[str, torch.Tensor],
        encoded_ids: torch.Tensor,
        position_index: torch.Tensor,
    ) -> torch.Tensor:
        """`sequences`, `encoded_ids` and `position_index` are the global batch's; `item_features` this rank's share
        of the encoded items."""
        recommender = self.recommender
        candidates = gather_rows(recommender.item_encoder(item_features))  # [U, d], in slot order
        rows = share(sequences.shape[0], self.rank, self.ranks)
        mine = recommender.sequence_outputs(candidates, sequences[rows], position_index[rows])
        outputs = SequenceOutputs(
            gather_rows(mine.users),
            gather_rows_plain(mine.labels),
            gather_rows(mine.history),
            gather_rows_plain(mine.predict) if mine.predict is not None else None,
        )
        return recommender.loss_of(outputs, candidates, encoded_ids, sequences)
