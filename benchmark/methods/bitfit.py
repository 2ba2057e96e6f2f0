"""BitFit: only the towers' bias terms train."""

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.end_to_end import EndToEndMethod
from benchmark.methods.registry import register_method
from benchmark.models.towers import Tower, preset_has_bias


def _no_bias_message(modality: str, preset_name: str) -> str:
    return (
        f"BitFit cannot adapt the {modality} tower '{preset_name}': it has no bias parameters "
        "(e.g. Llama's projections and RMSNorm), so BitFit would train nothing in it"
    )


class BiasOnlyLayerNorm(nn.LayerNorm):
    """A LayerNorm whose scale is frozen and whose shift trains, with the affine part outside the fused kernel.

    Why: CUDA's fused LayerNorm backward asked for the bias gradient without the weight gradient
    returns an empty bias gradient once a batch has more than 65,536 rows (the two-pass reduction
    sizes its buffer from the undefined weight gradient; torch 2.11 on an H200:
    "NativeLayerNormBackward0 returned an invalid gradient at index 2 - got [0] but expected shape
    compatible with [768]"). Normalising without affine parameters and applying scale and shift as
    two element-wise ops computes the same values; it saves no extra activation for backward (the
    frozen scale needs no input kept), so the measured memory stays BitFit's.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        normalized = F.layer_norm(input, self.normalized_shape, None, None, self.eps)
        return normalized * self.weight + self.bias


def _split_affine_layer_norms(model: nn.Module) -> int:
    """Give every LayerNorm with a frozen weight and a training bias the split form; how many were changed."""
    changed = 0
    for module in model.modules():
        if (
            type(module) is nn.LayerNorm
            and module.weight is not None
            and module.bias is not None
            and not module.weight.requires_grad
            and module.bias.requires_grad
        ):
            module.__class__ = BiasOnlyLayerNorm
            changed += 1
    return changed


@register_method
class BitFit(EndToEndMethod):
    name = "bitfit"
    description = "BitFit: only bias terms of the towers train (LayerNorm biases included)"

    @classmethod
    def tower_problem(cls, modality: str, preset_name: str) -> str | None:
        return None if preset_has_bias(preset_name) else _no_bias_message(modality, preset_name)

    def adapt_tower(self, tower: Tower) -> None:
        biases = 0
        for parameter_name, parameter in tower.model.named_parameters():
            is_bias = parameter_name.endswith("bias")
            parameter.requires_grad_(is_bias)
            biases += parameter.numel() if is_bias else 0
        if biases == 0:  # a local checkpoint of a bias-free architecture
            raise TowerError(_no_bias_message(tower.modality, tower.preset_name))
        _split_affine_layer_norms(tower.model)
