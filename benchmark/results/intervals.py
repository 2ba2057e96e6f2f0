"""Spread of a configuration's figures over its runs (seeds x repeats): a bootstrap interval of the median."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
INTERVAL_DESCRIPTION = (
    f"{CONFIDENCE:.0%} percentile bootstrap interval of the median over the runs of a configuration "
    f"(seeds x repeats, {RESAMPLES} resamples, fixed seed)"
)


def bootstrap_median_interval(
    values: list[float | None] | None, resamples: int = RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """(low, high) of the median's percentile bootstrap interval; (None, None) with fewer than two runs.

    The generator is seeded so that the same rows always print the same interval.
    """
    samples = np.asarray([v for v in (values or []) if v is not None], dtype=np.float64)
    if len(samples) < 2:
        return None, None
    generator = np.random.default_rng(0)
    medians = np.median(samples[generator.integers(0, len(samples), size=(resamples, len(samples)))], axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100.0 - tail))
