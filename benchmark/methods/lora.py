"""LoRA through peft on the attention query/value projections of every layer."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peft import LoraConfig, get_peft_model

from benchmark.methods.end_to_end import EndToEndMethod, EndToEndOptions
from benchmark.methods.registry import register_method
from benchmark.methods.targets import resolve_query_value
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower


@dataclass(frozen=True)
class LoRAOptions(EndToEndOptions):
    r: int = setting(8, minimum=1, help="rank")
    alpha: int = setting(16, minimum=1, help="scaling numerator (scale = alpha / r)")
    dropout: float = setting(0.0, minimum=0)


@register_method
class LoRA(EndToEndMethod):
    name = "lora"
    description = "LoRA (peft) on attention query/value of every layer; base weights kept"
    Options = LoRAOptions

    def adapt_tower(self, tower: Tower) -> None:
        targets = resolve_query_value(tower.model, tower.label)
        config = LoraConfig(
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=targets,
            bias="none",
        )
        # get_peft_model freezes the base weights and leaves them untouched: B = 0 at init. peft asks the model for
        # `is_gradient_checkpointing`, which transformers 5 deprecates with a FutureWarning in every LoRA cell's
        # log; that is peft's call to change, and nothing a user can act on, so it is silenced here and only here.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
            )
            tower.model = get_peft_model(tower.model, config)
