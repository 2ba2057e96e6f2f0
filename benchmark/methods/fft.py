"""Full fine-tuning: every tower parameter trains."""

from benchmark.methods.end_to_end import EndToEndMethod
from benchmark.methods.registry import register_method
from benchmark.models.towers import Tower


@register_method
class FullFineTuning(EndToEndMethod):
    name = "fft"
    description = "full fine-tuning: every tower parameter trains"

    def adapt_tower(self, tower: Tower) -> None:
        for parameter in tower.parameters():
            parameter.requires_grad_(True)
