"""The model's set-up around training: frozen towers stored in the compute precision, the GPU's peak for the
precision, and the text tokens each item holds."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.data.dataset import ItemFeatures
from benchmark.modalities.registry import get_modality
from benchmark.models.quantized_base import cast_unquantized, has_quantized_weights
from benchmark.models.towers import Tower
from benchmark.profile.peaks import dense_peak_tflops
from benchmark.results.pieces import (
    DevicePeak,
)
from benchmark.train.precision import DTYPES


def tokens_per_item_of(features: ItemFeatures, modalities: list[str]) -> torch.Tensor | None:
    """Real (non-padding) tokens of every item, summed over the modalities that count tokens (text), for tokens
    per second; None when none of `modalities` does. The padding item (row 0, what a static batch's padding slots
    encode) has none."""
    masks = [
        get_modality(modality).pooling_mask(features.tensors)
        for modality in modalities
        if get_modality(modality).counts_tokens
    ]
    present = [mask for mask in masks if mask is not None]
    if not present:
        return None
    tokens = torch.stack([mask.sum(dim=1).to(torch.int64) for mask in present]).sum(dim=0)
    tokens[0] = 0
    return tokens


def store_frozen_towers(model: nn.Module, precision: str, frozen_weights: str) -> int:
    """Store the towers nothing trains (an uncached side network's) in the compute precision; how many were.

    Under autocast a frozen fp32 weight is cast to bf16/fp16 again on every step (autocast keeps casts only of
    weights that train); a tower stored in that precision computes the same matmuls without the casts, in half the
    memory — what the hidden-state cache build does too. Towers with any trainable parameter (FFT, LoRA, Adapter,
    BitFit) keep fp32 weights: they are what the optimizer updates, or sit beside what it does. A quantized base
    keeps its packed weights: the rest of the tower (embeddings, norms) is stored in the compute precision.
    """
    if frozen_weights != "compute" or precision == "fp32":
        return 0
    dtype = DTYPES[precision]
    towers = [module for module in model.modules() if isinstance(module, Tower)]
    frozen = [tower for tower in towers if not any(p.requires_grad for p in tower.parameters())]
    for tower in frozen:
        if has_quantized_weights(tower):
            cast_unquantized(tower, dtype)
        else:
            tower.to(dtype)
    return len(frozen)


def device_peak(device: torch.device, precision: str) -> DevicePeak | None:
    """The GPU's dense peak for this precision, from the peak table (None on a CPU or an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = dense_peak_tflops(name, precision, tf32=torch.backends.cuda.matmul.allow_tf32)
    return DevicePeak(*peak) if peak is not None else DevicePeak(None, None)
