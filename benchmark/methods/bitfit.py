"""BitFit: only the towers' bias terms train."""

from torch import nn

from benchmark.methods.end_to_end import EndToEndMethod
from benchmark.methods.registry import register_method


@register_method
class BitFit(EndToEndMethod):
    name = "bitfit"
    description = "BitFit: only bias terms of the towers train (LayerNorm biases included)"

    def adapt_tower(self, tower: nn.Module) -> None:
        for parameter_name, parameter in tower.model.named_parameters():
            parameter.requires_grad_(parameter_name.endswith("bias"))
