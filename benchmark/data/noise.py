"""Noise injection: a fraction of a dataset's training interactions replaced by random items (`dataset.noise`).

Which interactions: every position of a user's sequence but the last two, which leave-one-out holds out as the
validation and test targets; the evaluation stays clean, as in the denoising papers (GUIDER), so that a denoising
objective can be seen to win back the accuracy the noise took. Each such position is replaced with probability
`noise` by an item drawn uniformly from the other items, from a generator seeded by `noise_seed` alone: every cell,
method and seed of a suite trains on the same noisy data. Item content is untouched (hidden-state caches stay).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmark.data.raw import RawDataset

# The positions leave-one-out keeps for evaluation at the end of every sequence (validation, test).
HELD_OUT = 2


def inject_noise(raw: RawDataset, fraction: float, seed: int) -> RawDataset:
    """`raw` with `fraction` of its training interactions replaced by other random items (the same `raw` at 0)."""
    if fraction <= 0:
        return raw
    generator = np.random.default_rng(seed)
    noisy = []
    for sequence in raw.sequences:
        items = np.asarray(sequence, dtype=np.int64)
        trained = max(len(items) - HELD_OUT, 0)
        replace = generator.random(trained) < fraction
        # Uniform over the other n - 1 items: draw from 1..n-1 and step over the original.
        drawn = generator.integers(1, raw.n_items, size=trained)
        drawn = drawn + (drawn >= items[:trained])
        items[:trained] = np.where(replace, drawn, items[:trained])
        noisy.append(items.tolist())
    return dataclasses.replace(raw, sequences=noisy)
