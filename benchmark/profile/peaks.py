"""Dense peak throughput of the GPUs users have, for model FLOPs utilisation (MFU).

Figures are NVIDIA's published peaks at boost clock, **dense** (the datasheets' headline tensor figures assume
2:4 sparsity; these are half of them). Tensor-core bf16/fp16 for mixed-precision cells; for fp32 cells, TF32
when torch lets matmuls use it (`torch.backends.cuda.matmul.allow_tf32`), plain FP32 otherwise. A GPU that is not
in the table gets no MFU, never a guess from a similar name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PeakEntry:
    pattern: str  # matched against the NVML / torch device name, case-insensitive
    label: str
    bf16: float  # TFLOP/s, dense tensor core (fp16 is the same on every GPU here)
    tf32: float
    fp32: float
    source: str


_A100 = "NVIDIA A100 Tensor Core GPU datasheet (2021): FP32 19.5, TF32 156/312*, BF16 312/624* (*sparsity)"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet (2023): {form} FP32 {fp32}, TF32 {tf32}*, BF16 {bf16}* (*sparsity)"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (2024): {form} FP32 {fp32}, TF32 {tf32}*, BF16 {bf16}* (*sparsity)"

# Order matters: the first pattern that matches wins (NVL and PCIe before the SXM name they contain).
PEAKS: tuple[PeakEntry, ...] = (
    PeakEntry(r"\bA100\b", "A100", 312.0, 156.0, 19.5, _A100),
    PeakEntry(
        r"\bH100\b.*\bNVL\b", "H100 NVL", 835.5, 417.5, 60.0, _H100.format(form="NVL", fp32=60, tf32=835, bf16=1671)
    ),
    PeakEntry(
        r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.5, 378.0, 51.0, _H100.format(form="PCIe", fp32=51, tf32=756, bf16=1513)
    ),
    PeakEntry(r"\bH100\b", "H100 SXM", 989.5, 494.5, 67.0, _H100.format(form="SXM", fp32=67, tf32=989, bf16=1979)),
    PeakEntry(
        r"\bH200\b.*\bNVL\b", "H200 NVL", 835.5, 417.5, 60.0, _H200.format(form="NVL", fp32=60, tf32=835, bf16=1671)
    ),
    PeakEntry(r"\bH200\b", "H200 SXM", 989.5, 494.5, 67.0, _H200.format(form="SXM", fp32=67, tf32=989, bf16=1979)),
    PeakEntry(
        r"\bL40S\b",
        "L40S",
        362.05,
        183.0,
        91.6,
        "NVIDIA L40S datasheet (2023): FP32 91.6, TF32 183/366*, BF16 362.05/733* (*sparsity)",
    ),
    PeakEntry(
        r"\bRTX 4090\b",
        "GeForce RTX 4090",
        165.2,
        82.6,
        82.6,
        "NVIDIA Ada Lovelace GPU architecture whitepaper v1.01, RTX 4090: FP16/BF16 tensor with FP32 accumulate "
        "165.2/330.4*, TF32 82.6/165.2*, FP32 82.6 (*sparsity)",
    ),
)


def find_peak(device_name: str | None) -> PeakEntry | None:
    if not device_name:
        return None
    return next((entry for entry in PEAKS if re.search(entry.pattern, device_name, re.IGNORECASE)), None)


def dense_peak_tflops(device_name: str | None, precision: str, tf32: bool) -> tuple[float, str] | None:
    """(peak TFLOP/s, where the figure comes from) for a cell's precision on this device; None if unknown."""
    entry = find_peak(device_name)
    if entry is None:
        return None
    if precision in ("bf16", "fp16"):
        return entry.bf16, f"{entry.label} dense {precision}: {entry.source}"
    if tf32:
        return entry.tf32, f"{entry.label} dense TF32 (fp32 matmuls may use TF32): {entry.source}"
    return entry.fp32, f"{entry.label} FP32: {entry.source}"
