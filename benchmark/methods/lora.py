"""LoRA through peft on the attention query/value projections of every layer."""

from __future__ import annotations

from peft import LoraConfig, get_peft_model
from torch import nn

from benchmark.methods.end_to_end import EndToEndMethod
from benchmark.methods.registry import register_method
from benchmark.methods.targets import resolve_query_value


@register_method
class LoRA(EndToEndMethod):
    name = "lora"
    description = "LoRA (peft) on attention query/value of every layer; base weights kept"
    options = {"r": 8, "alpha": 16, "dropout": 0.0}

    def adapt_tower(self, tower: nn.Module) -> None:
        targets = resolve_query_value(tower.model, f"{tower.modality} tower '{tower.preset_name}'")
        config = LoraConfig(
            r=self.config["r"], lora_alpha=self.config["alpha"], lora_dropout=float(self.config["dropout"]),
            target_modules=targets, bias="none",
        )
        # get_peft_model freezes the base weights and leaves them untouched: B = 0 at init.
        tower.model = get_peft_model(tower.model, config)
