"""Full-ranking evaluation: every item is scored, the user's history is masked, HR@K / NDCG@K / MRR."""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch

from benchmark.data.dataset import ItemFeatures, left_pad


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among non-excluded items. Ties count against the target
    (pessimistic), so a model that scores everything equal gets no credit."""
    target_scores = scores.gather(1, targets.unsqueeze(1))
    competitors = (scores >= target_scores) & ~exclude
    competitors.scatter_(1, targets.unsqueeze(1), False)
    return competitors.sum(dim=1)


def metrics_from_ranks(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    metrics = {}
    for k in ks:
        hit = ranks < k
        metrics[f"hr@{k}"] = float(hit.mean()) if len(ranks) else math.nan
        metrics[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else math.nan
    metrics["mrr"] = float((1.0 / (ranks + 1.0)).mean()) if len(ranks) else math.nan
    return metrics


@torch.no_grad()
def encode_all_items(item_encoder: torch.nn.Module, features: ItemFeatures, n_items: int, device: torch.device,
                     batch_size: int, autocast: Callable[[], contextlib.AbstractContextManager]) -> torch.Tensor:
    """Item embeddings [n_items + 1, d]; row 0 (padding) is zero."""
    chunks = []
    for start in range(1, n_items + 1, batch_size):
        ids = torch.arange(start, min(start + batch_size, n_items + 1))
        batch = {name: tensor.to(device, non_blocking=True) for name, tensor in features.gather(ids).items()}
        with autocast():
            chunks.append(item_encoder(batch).float())
    table = torch.cat(chunks)
    return torch.cat([torch.zeros_like(table[:1]), table])


@torch.no_grad()
def rank_targets(user_states: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], item_table: torch.Tensor,
                 histories: list[np.ndarray], targets: np.ndarray, max_seq_len: int, batch_size: int,
                 autocast: Callable[[], contextlib.AbstractContextManager]) -> np.ndarray:
    """Rank every user's target among all items, scoring `batch_size` users at a time to bound memory."""
    device = item_table.device
    ranks = []
    for start in range(0, len(histories), batch_size):
        history = left_pad(histories[start:start + batch_size], max_seq_len).to(device)
        target = torch.as_tensor(targets[start:start + batch_size], device=device)
        with autocast():
            users = user_states(item_table[history], history > 0).float()
        scores = users @ item_table.T
        exclude = torch.zeros_like(scores, dtype=torch.bool)
        exclude[:, 0] = True
        exclude.scatter_(1, history, True)
        ranks.append(ranks_from_scores(scores, target, exclude).cpu())
    return torch.cat(ranks).numpy()
