"""TPME (Training-time, Parameter, GPU-Memory Efficiency) from the IISAN paper, and TPME-FFT.

TPME_i = a1 * t_norm + a2 * p_norm + a3 * m_norm with x_norm = (x - min X) / (max X - min X)
over the K methods compared on the same work; lower is better. It is relative to the set
compared, so TPME-FFT uses ratios to FFT in the same group instead (x_i / x_FFT), which does
not move when methods are added.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_WEIGHTS = (0.45, 0.1, 0.45)
MIN_GROUP_SIZE = 3


@dataclass(frozen=True)
class Costs:
    epoch_s: float
    trainable_params: float
    peak_mem_gib: float


def parse_weights(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError as error:
        raise ValueError(f"weights must be three numbers like 0.45,0.1,0.45, got '{text}'") from error
    if len(parts) != 3 or any(w < 0 for w in parts):
        raise ValueError(f"weights must be three non-negative numbers (time, params, memory), got '{text}'")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (a1 + a2 + a3 = 1), got {sum(parts):g} from '{text}'")
    return parts[0], parts[1], parts[2]


def _normalise(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    if high == low:
        return [0.0 for _ in values]  # every method costs the same: none is worse than another
    return [(value - low) / (high - low) for value in values]


def tpme_terms(
    costs: list[Costs], weights: tuple[float, float, float] = PAPER_WEIGHTS
) -> list[tuple[float, float, float]]:
    """Each method's three weighted terms (time, parameters, memory); TPME is their sum."""
    if not costs:
        return []
    a1, a2, a3 = weights
    t = _normalise([c.epoch_s for c in costs])
    p = _normalise([c.trainable_params for c in costs])
    m = _normalise([c.peak_mem_gib for c in costs])
    return [(a1 * ti, a2 * pi, a3 * mi) for ti, pi, mi in zip(t, p, m)]


def tpme(costs: list[Costs], weights: tuple[float, float, float] = PAPER_WEIGHTS) -> list[float]:
    return [sum(terms) for terms in tpme_terms(costs, weights)]


def tpme_fft(
    costs: list[Costs], fft: Costs | None, weights: tuple[float, float, float] = PAPER_WEIGHTS
) -> list[float | None]:
    if fft is None or min(fft.epoch_s, fft.trainable_params, fft.peak_mem_gib) <= 0:
        return [None for _ in costs]
    a1, a2, a3 = weights
    return [
        a1 * c.epoch_s / fft.epoch_s
        + a2 * c.trainable_params / fft.trainable_params
        + a3 * c.peak_mem_gib / fft.peak_mem_gib
        for c in costs
    ]
