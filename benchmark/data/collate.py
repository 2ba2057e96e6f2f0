"""Turn a batch of item-id sequences into what the item encoder reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmark.data.dataset import ItemFeatures

# Bucketed step shapes round a batch's encoded items up to a multiple of this.
ITEM_BUCKET = 64


@dataclass
class TrainBatch:
    sequences: torch.Tensor  # [B, L+1] left-padded item ids
    encoded_ids: torch.Tensor  # [U] item ids to encode (0: a padding slot, never a candidate)
    position_index: torch.Tensor  # [B, L+1] row in the encoding, -1 for padding
    features: dict[str, torch.Tensor]
    real_sequences: int  # sequences of the batch that are not padding rows
    real_items: int  # encoded items that are not padding slots

    def pin_memory(self) -> TrainBatch:
        """Called by the DataLoader (pin_memory=True) so the copy to the GPU can overlap compute."""
        return self.apply(lambda tensor: tensor.pin_memory())

    def to(self, device: torch.device) -> TrainBatch:
        return self.apply(lambda tensor: tensor.to(device, non_blocking=True))

    def apply(self, change: Callable[[torch.Tensor], torch.Tensor]) -> TrainBatch:
        """The same batch with every tensor changed (moved, pinned)."""
        return TrainBatch(
            change(self.sequences),
            change(self.encoded_ids),
            change(self.position_index),
            {name: change(tensor) for name, tensor in self.features.items()},
            self.real_sequences,
            self.real_items,
        )


def collate_train_batch(
    sequences: torch.Tensor,
    features: ItemFeatures,
    unique_items: bool,
    shapes: str = "dynamic",
    rows: int | None = None,
    part: tuple[int, int] | None = None,
) -> TrainBatch:
    """Encode every non-pad position (as the IISAN paper does), or each distinct item once if `unique_items`.

    `shapes` (train.step_shapes): `dynamic` encodes the batch's items and nothing else, so a step's work depends on
    how many items its batch happens to hold; `static` gives every batch `rows` sequences (missing ones are empty
    rows) and one encoding slot per position, padding included — padding slots encode item 0, which the loss never
    uses as a candidate — so every step does the same work (and can be captured once as a CUDA graph); `bucketed`
    pads the encoded items to a multiple of ITEM_BUCKET (few distinct shapes, little padding).

    `part` (rank, ranks): a distributed cell's share of the batch. The batch stays the global one (sequences, encoded
    ids and position index, padded to a multiple of the ranks with empty rows and padding slots) and only the
    features of this rank's equal share of the slots are gathered: each rank encodes its share, and the loss gathers
    all shares (train/distributed/step_loss.py).
    """
    real_sequences = int(sequences.shape[0])
    if shapes != "dynamic" and rows is not None and rows > real_sequences:
        sequences = torch.cat([sequences, sequences.new_zeros(rows - real_sequences, sequences.shape[1])])
    ranks = part[1] if part is not None else 1
    if sequences.shape[0] % ranks:
        sequences = torch.cat([sequences, sequences.new_zeros(ranks - sequences.shape[0] % ranks, sequences.shape[1])])
    present = sequences > 0
    position_index = torch.full_like(sequences, -1)
    if unique_items:
        encoded_ids, inverse = torch.unique(sequences[present], return_inverse=True)
        position_index[present] = inverse
        real_items = int(encoded_ids.numel())
    elif shapes == "static":
        encoded_ids = sequences.flatten()
        position_index = torch.arange(sequences.numel()).view_as(sequences).masked_fill(~present, -1)
        real_items = int(present.sum())
    else:
        encoded_ids = sequences[present]
        position_index[present] = torch.arange(len(encoded_ids))
        real_items = int(encoded_ids.numel())
    slots = {
        "dynamic": len(encoded_ids),
        "static": sequences.numel(),
        "bucketed": min(-(-real_items // ITEM_BUCKET) * ITEM_BUCKET, sequences.numel()),
    }[shapes]
    slots = -(-slots // ranks) * ranks
    if slots > len(encoded_ids):
        encoded_ids = torch.cat([encoded_ids, encoded_ids.new_zeros(slots - len(encoded_ids))])
    if part is None:
        gathered = features.gather(encoded_ids)
    else:
        share = slots // ranks
        gathered = features.gather(encoded_ids[part[0] * share : (part[0] + 1) * share])
    return TrainBatch(sequences, encoded_ids, position_index, gathered, real_sequences, real_items)
