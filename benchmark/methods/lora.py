"""LoRA through peft on the attention query/value projections of every layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from peft import LoraConfig

from benchmark.methods.end_to_end import EndToEndMethod, EndToEndOptions, wrap_with_peft
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
        wrap_with_peft(tower, config)  # B = 0 at init: the output equals the base model's
