"""Spread of a configuration's figures over its runs (seeds x repeats): a bootstrap interval of the median."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
# Runs a configuration needs before the leaderboard shows its interval: with two, every resample's median is one of
# the two values or their mean, so the "95%" interval is just the two values.
MIN_INTERVAL_RUNS = 3
INTERVAL_DESCRIPTION = (
    f"{CONFIDENCE:.0%} percentile bootstrap interval of the median over the runs of a configuration "
    f"(seeds x repeats, {RESAMPLES} resamples, fixed seed; at least {MIN_INTERVAL_RUNS} runs)"
)


def bootstrap_median_interval(
    values: list[float | None] | None, resamples: int = RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """(low, high) of the median's percentile bootstrap interval; (None, None) with fewer than two runs.

    The generator is seeded so that the same rows always print the same interval.
    """
    samples = np.sort(np.asarray([v for v in (values or []) if v is not None], dtype=np.float64))
    n = len(samples)
    if n < 2:
        return None, None
    generator = np.random.default_rng(0)
    medians = _resampled_medians(samples, n, resamples, generator)
    tail = (1.0 - confidence) / 2.0 * 100.0
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100.0 - tail))


def _resampled_medians(ordered: np.ndarray, n: int, resamples: int, generator: np.random.Generator) -> np.ndarray:
    """The medians of `resamples` bootstrap resamples of the sorted `ordered`, drawn in O(resamples), not
    O(resamples x n): a resample's median needs only its middle order statistics. Resampling draws indices
    floor(n·U) of n uniforms U, so its k-th smallest value is ordered[floor(n·U_(k))], where U_(k) ~ Beta(k + 1, n - k)
    and, given U_(k) = u, the next one is u + (1 - u)·Beta(1, n - k - 1). Same distribution as drawing whole
    resamples (a store with 500 runs a configuration took seconds that way)."""
    middle = (n - 1) // 2
    lower = generator.beta(middle + 1, n - middle, size=resamples)

    def index(uniform: np.ndarray) -> np.ndarray:
        return np.minimum((uniform * n).astype(np.int64), n - 1)

    low: np.ndarray = ordered[index(lower)]
    if n % 2:
        return low
    upper = lower + (1.0 - lower) * generator.beta(1, n - middle - 1, size=resamples)
    high: np.ndarray = ordered[index(upper)]
    average: np.ndarray = (low + high) / 2.0
    return average
