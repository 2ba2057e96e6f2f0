"""Full-ranking evaluation: every item is scored, the user's history is masked, HR@K / NDCG@K / MRR.

Scores are computed for `batch_size` users against `item_chunk` items at a time and only the
count of items ranked above each target is kept, so memory stays bounded for any item count.
The popularity and random baselines go through the same ranking code as the models.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from benchmark.data.dataset import ItemFeatures, left_pad
from benchmark.train.distributed.evaluation_share import gather_share, rank_share
from benchmark.train.distributed.world import World


def metrics_from_ranks(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    metrics = {}
    for k in ks:
        hit = ranks < k
        metrics[f"hr@{k}"] = float(hit.mean()) if len(ranks) else math.nan
        metrics[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else math.nan
    metrics["mrr"] = float((1.0 / (ranks + 1.0)).mean()) if len(ranks) else math.nan
    return metrics


class Scorer(Protocol):
    def prepare(self, history: torch.Tensor, users: torch.Tensor) -> object: ...
    def target_scores(self, state: object, targets: torch.Tensor) -> torch.Tensor: ...
    def block_scores(self, state: object, item_ids: torch.Tensor) -> torch.Tensor: ...


class ModelScorer:
    """Dot product of the user encoder's state with the item table."""

    def __init__(
        self,
        user_states: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        item_table: torch.Tensor,
        autocast: Callable[[], contextlib.AbstractContextManager[None]],
    ):
        self.user_states, self.item_table, self.autocast = user_states, item_table, autocast

    def prepare(self, history: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.user_states(self.item_table[history], history > 0).float()

    def target_scores(self, state: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (state * self.item_table[targets]).sum(-1)

    def block_scores(self, state: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        return state @ self.item_table[item_ids].T


class PopularityScorer:
    """Training-interaction counts, ties broken by item id so equal counts do not all lose."""

    def __init__(self, item_counts: np.ndarray, device: torch.device):
        counts = torch.as_tensor(item_counts, dtype=torch.float64, device=device)
        self.scores = counts - torch.arange(len(counts), device=device, dtype=torch.float64) / (len(counts) + 1)

    def prepare(self, history: torch.Tensor, users: torch.Tensor) -> None:
        return None

    def target_scores(self, state: None, targets: torch.Tensor) -> torch.Tensor:
        return self.scores[targets]

    def block_scores(self, state: None, item_ids: torch.Tensor) -> torch.Tensor:
        return self.scores[item_ids].unsqueeze(0)


class RandomScorer:
    """A fixed pseudo-random score per (user, item), reproducible from the seed and computable in chunks."""

    def __init__(self, seed: int):
        self.seed = seed

    def _hash(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        mixed = (users * 0x9E3779B1 + items * 0x85EBCA77 + self.seed * 0xC2B2AE3D) % 2_147_483_647
        mixed = (mixed * 48271) % 2_147_483_647
        return mixed.double() / 2_147_483_647

    def prepare(self, history: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return users

    def target_scores(self, users: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._hash(users, targets)

    def block_scores(self, users: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        return self._hash(users.unsqueeze(1), item_ids.unsqueeze(0))


@torch.no_grad()
def rank_targets(
    scorer: Scorer,
    histories: list[np.ndarray],
    targets: np.ndarray,
    n_items: int,
    max_seq_len: int,
    device: torch.device,
    batch_size: int = 256,
    item_chunk: int = 16384,
    world: World | None = None,
) -> np.ndarray:
    """0-based rank of every user's target among all items 1..n_items, history masked (ties pessimistic). With a
    `world`, each rank ranks its share of the users and every rank returns all ranks."""
    if not histories:
        return np.zeros(0, dtype=np.int64)
    positions = rank_share(len(histories), world)
    ranks = []
    for start in range(0, positions.per_rank, batch_size):
        chosen = positions.indices[start : start + batch_size]
        history = left_pad([histories[index] for index in chosen], max_seq_len).to(device)
        target = torch.as_tensor(targets[chosen], device=device)
        users = torch.as_tensor(chosen, device=device)
        state = scorer.prepare(history, users)
        target_score = scorer.target_scores(state, target).unsqueeze(1)
        ahead = torch.zeros(len(target), dtype=torch.long, device=device)
        for chunk_start in range(1, n_items + 1, item_chunk):
            ids = torch.arange(chunk_start, min(chunk_start + item_chunk, n_items + 1), device=device)
            competitors = scorer.block_scores(state, ids) >= target_score
            excluded = (ids.view(1, -1, 1) == history.unsqueeze(1)).any(-1) | (ids.unsqueeze(0) == target.unsqueeze(1))
            ahead += (competitors & ~excluded).sum(1)
        ranks.append(ahead.cpu())
    return gather_share(torch.cat(ranks), positions, world, device).numpy()


@torch.no_grad()
def encode_all_items(
    item_encoder: torch.nn.Module,
    features: ItemFeatures,
    n_items: int,
    device: torch.device,
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[None]],
    world: World | None = None,
) -> torch.Tensor:
    """Item embeddings [n_items + 1, d]; row 0 (padding) is zero. With a `world`, each rank encodes its share of
    the catalogue and every rank returns the whole table."""
    positions = rank_share(n_items, world)
    chunks = []
    for start in range(0, positions.per_rank, batch_size):
        ids = torch.as_tensor(positions.indices[start : start + batch_size] + 1)
        batch = {name: tensor.to(device, non_blocking=True) for name, tensor in features.gather(ids).items()}
        with autocast():
            chunks.append(item_encoder(batch).float())
    table = gather_share(torch.cat(chunks), positions, world, device)
    return torch.cat([torch.zeros_like(table[:1]), table])
