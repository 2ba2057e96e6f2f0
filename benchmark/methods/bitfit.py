"""BitFit: only the towers' bias terms train."""

from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.end_to_end import EndToEndMethod
from benchmark.methods.registry import register_method
from benchmark.models.towers import preset_has_bias


def _no_bias_message(modality: str, preset_name: str) -> str:
    return (
        f"BitFit cannot adapt the {modality} tower '{preset_name}': it has no bias parameters "
        "(e.g. Llama's projections and RMSNorm), so BitFit would train nothing in it"
    )


@register_method
class BitFit(EndToEndMethod):
    name = "bitfit"
    description = "BitFit: only bias terms of the towers train (LayerNorm biases included)"

    @classmethod
    def tower_problem(cls, modality: str, preset_name: str) -> str | None:
        return None if preset_has_bias(preset_name) else _no_bias_message(modality, preset_name)

    def adapt_tower(self, tower: nn.Module) -> None:
        biases = 0
        for parameter_name, parameter in tower.model.named_parameters():
            is_bias = parameter_name.endswith("bias")
            parameter.requires_grad_(is_bias)
            biases += parameter.numel() if is_bias else 0
        if biases == 0:  # a local checkpoint of a bias-free architecture
            raise TowerError(_no_bias_message(tower.modality, tower.preset_name))
