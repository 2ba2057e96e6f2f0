"""Turn a batch of item-id sequences into what the item encoder reads."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.data.dataset import ItemFeatures


@dataclass
class TrainBatch:
    sequences: torch.Tensor  # [B, L+1] left-padded item ids
    encoded_ids: torch.Tensor  # [U] item ids to encode
    position_index: torch.Tensor  # [B, L+1] row in the encoding, -1 for padding
    features: dict[str, torch.Tensor]

    def pin_memory(self) -> TrainBatch:
        """Called by the DataLoader (pin_memory=True) so the copy to the GPU can overlap compute."""
        return TrainBatch(
            self.sequences.pin_memory(),
            self.encoded_ids.pin_memory(),
            self.position_index.pin_memory(),
            {name: tensor.pin_memory() for name, tensor in self.features.items()},
        )

    def to(self, device: torch.device) -> TrainBatch:
        move = lambda tensor: tensor.to(device, non_blocking=True)  # noqa: E731
        return TrainBatch(
            move(self.sequences),
            move(self.encoded_ids),
            move(self.position_index),
            {name: move(tensor) for name, tensor in self.features.items()},
        )


def collate_train_batch(sequences: torch.Tensor, features: ItemFeatures, unique_items: bool) -> TrainBatch:
    """Encode every non-pad position (as the IISAN paper does), or each distinct item once if `unique_items`."""
    present = sequences > 0
    position_index = torch.full_like(sequences, -1)
    if unique_items:
        encoded_ids, inverse = torch.unique(sequences[present], return_inverse=True)
        position_index[present] = inverse
    else:
        encoded_ids = sequences[present]
        position_index[present] = torch.arange(len(encoded_ids))
    return TrainBatch(sequences, encoded_ids, position_index, features.gather(encoded_ids))
