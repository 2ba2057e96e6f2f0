"""A method: partial fine-tuning, where only each tower's top `layers` transformer blocks (and the heads) train.

The classic baseline between a frozen encoder and full fine-tuning. Install with MMBENCH_PLUGINS=top_layers_method
(the module importable, e.g. on PYTHONPATH); suites then list `{name: top_layers, options: {layers: 2}}`.
"""

from dataclasses import dataclass

from torch import nn

from benchmark.errors import TowerError
from benchmark.methods.end_to_end import EndToEndMethod, freeze
from benchmark.methods.registry import register_method
from benchmark.models.towers import Tower
from benchmark.suite.config import setting


@dataclass(frozen=True)
class TopLayersOptions:
    # `setting` declares what the suite's validation checks: a minimum, a help line for `mmbench list methods`.
    layers: int = setting(1, minimum=1, help="how many of the top transformer blocks of each tower train")


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The longest ModuleList of the model: its stack of transformer blocks (BERT, ViT, Llama, VideoMAE, AST)."""
    stacks = [module for module in model.modules() if isinstance(module, nn.ModuleList)]
    if not stacks:
        raise TowerError(f"{type(model).__name__} has no stack of blocks for top_layers to train")
    return max(stacks, key=len)


@register_method
class TopLayers(EndToEndMethod):
    name = "top_layers"
    description = "partial fine-tuning: the top `layers` blocks of each tower train, the rest stay frozen"
    Options = TopLayersOptions

    def adapt_tower(self, tower: Tower) -> None:
        freeze(tower)
        for block in transformer_blocks(tower.model)[-self.options.layers :]:
            for parameter in block.parameters():
                parameter.requires_grad_(True)
