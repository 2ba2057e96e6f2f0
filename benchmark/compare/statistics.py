"""Is the current step time really slower? A hierarchical bootstrap interval of the ratio of medians.

Steps of one run are not independent of the run they belong to: a process lands on a warmer GPU,
another allocator layout, another CPU core, and every step of it moves together. So the unit that
is resampled first is the run (seed x repeat), and then the steps inside each drawn run. With one
run per side this is a plain bootstrap over steps and says nothing about run-to-run spread: the
regression suites run every cell several times (`repeats:`) for that reason.

A one-sided test at level `alpha` on each side: the current side is significantly slower when the
`alpha` quantile of the bootstrap ratio is above 1, significantly faster when the `1 - alpha`
quantile is below 1. The generator is seeded, so the same rows always give the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
# Steps drawn per resample, at most: a configuration with many runs (a long CI history) draws fewer steps from
# each drawn run. That only adds within-run noise to the resampled median (a wider interval: conservative, never
# a false regression) and keeps the cost flat as runs accumulate; the GPU regression suite (3 runs of 40 steps)
# stays below it and is resampled in full.
DRAWS_PER_RESAMPLE = 160
DESCRIPTION = (
    "hierarchical percentile bootstrap of the ratio of median step times (runs resampled, then the steps "
    f"inside each run, at most {DRAWS_PER_RESAMPLE} steps a resample; {RESAMPLES} resamples, fixed seed), "
    "one-sided at level alpha"
)


@dataclass(frozen=True)
class RatioInterval:
    ratio: float  # median of current steps / median of baseline steps, all runs pooled
    low: float  # the alpha quantile of the bootstrap ratio
    high: float  # the 1 - alpha quantile
    baseline_samples: int
    current_samples: int


def _resampled_medians(runs: list[np.ndarray], resamples: int, generator: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` hierarchical resamples: runs with replacement, then steps within each run."""
    lengths = np.array([len(run) for run in runs])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pooled = np.concatenate(runs)
    # Every drawn run contributes as many steps as a typical run has, within the draw budget.
    per_run = max(1, min(int(np.median(lengths)), DRAWS_PER_RESAMPLE // len(runs)))
    chosen = generator.integers(0, len(runs), size=(resamples, len(runs)))
    uniform = generator.random(size=(resamples, len(runs), per_run), dtype=np.float32)
    steps = offsets[chosen][..., None] + (uniform * lengths[chosen][..., None]).astype(np.int64)
    drawn = pooled[steps].reshape(resamples, -1)
    middle = drawn.shape[1] // 2
    if drawn.shape[1] % 2:
        return np.partition(drawn, middle, axis=1)[:, middle]
    ordered = np.partition(drawn, (middle - 1, middle), axis=1)  # the median without np.median's copies
    return (ordered[:, middle - 1] + ordered[:, middle]) / 2.0


def median_ratio_interval(
    baseline_runs: list[list[float]],
    current_runs: list[list[float]],
    alpha: float,
    resamples: int = RESAMPLES,
) -> RatioInterval | None:
    """The ratio of medians with its one-sided bounds at level `alpha`; None when a side has no samples."""
    baseline = [np.asarray(run, dtype=np.float64) for run in baseline_runs if run]
    current = [np.asarray(run, dtype=np.float64) for run in current_runs if run]
    if not baseline or not current:
        return None
    generator = np.random.default_rng(0)
    base_medians = _resampled_medians(baseline, resamples, generator)
    current_medians = _resampled_medians(current, resamples, generator)
    ratios = current_medians / base_medians
    return RatioInterval(
        ratio=float(np.median(np.concatenate(current)) / np.median(np.concatenate(baseline))),
        low=float(np.quantile(ratios, alpha)),
        high=float(np.quantile(ratios, 1.0 - alpha)),
        baseline_samples=int(sum(len(run) for run in baseline)),
        current_samples=int(sum(len(run) for run in current)),
    )
