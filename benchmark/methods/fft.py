"""Full fine-tuning: every tower parameter trains."""

from benchmark.methods.end_to_end import EndToEndMethod
from benchmark.methods.registry import register_method
from benchmark.models.towers import Tower


@register_method
class FullFineTuning(EndToEndMethod):
    name = "fft"
    description = "full fine-tuning: every tower parameter trains"

    @classmethod
    def quantized_base_problem(cls, options: object, base_precision: str) -> str | None:
        return (
            "full fine-tuning trains the towers' own weights, which a quantized base holds as frozen packed integers: "
            "quantize the base under lora, adapter, bitfit, peft or a side network (QLoRA), or leave base_precision out"
        )

    def adapt_tower(self, tower: Tower) -> None:
        for parameter in tower.parameters():
            parameter.requires_grad_(True)
