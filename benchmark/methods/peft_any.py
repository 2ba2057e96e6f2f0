"""Any PEFT method by its own peft config: `{name: peft, label: dora, options: {type: LORA, config: {use_dora: true}}}`.

`type` is peft's name of the method (its `PeftType`: LORA, IA3, LOHA, LOKR, VERA, OFT, BOFT, ...; case does not
matter), plus two spellings that read better in a suite: DORA (LORA with `use_dora`) and RSLORA (LORA with
`use_rslora`). `config` is exactly the arguments of that method's peft config class (`LoraConfig`, `IA3Config`,
...), validated by peft itself when the suite is. Without `target_modules`, a method adapts every layer's attention
query and value projections, as `lora` does, so that methods compare on the same layers; IA3 then treats none of
them as feed-forward. Prompt-learning methods (prefix, prompt and p-tuning) are refused: they prepend virtual tokens
inside a task model, and a tower is an encoder called directly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmark.errors import TowerError
from benchmark.methods.end_to_end import EndToEndMethod, EndToEndOptions, wrap_with_peft
from benchmark.methods.registry import register_method
from benchmark.methods.targets import resolve_query_value
from benchmark.models.quantized_base import bitsandbytes_installed, has_quantized_weights, quantize_linears
from benchmark.registry import closest_hint
from benchmark.suite.config import setting

if TYPE_CHECKING:
    from benchmark.models.towers import Tower

# Spellings a suite reads better with: (peft's type, the config flags they set).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "DORA": ("LORA", {"use_dora": True}),
    "RSLORA": ("LORA", {"use_rslora": True}),
}


@dataclass(frozen=True)
class PeftOptions(EndToEndOptions):
    type: str = setting(
        "LORA", help="peft's method (PeftType): LORA, DORA, RSLORA, IA3, LOHA, LOKR, VERA, OFT, BOFT, ..."
    )
    config: dict[str, Any] = setting(
        factory=dict,
        help="the arguments of that method's peft config class (LoraConfig, IA3Config, ...); target_modules default: "
        "every layer's attention query/value",
    )


def peft_config_classes() -> dict[str, type]:
    """Every peft method's config class, by its PeftType name."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    return {
        str(getattr(kind, "value", kind)): config_class for kind, config_class in PEFT_TYPE_TO_CONFIG_MAPPING.items()
    }


def resolve_type(options: PeftOptions) -> tuple[type, dict[str, Any]]:
    """The config class `options.type` names and the arguments to build it with (an alias's flags added); a
    `ValueError` saying why not."""
    asked = options.type.upper()
    peft_type, flags = ALIASES.get(asked, (asked, {}))
    from peft.config import PromptLearningConfig

    every = peft_config_classes()
    classes = {name: cls for name, cls in every.items() if not issubclass(cls, PromptLearningConfig)}
    if peft_type not in classes:
        if peft_type in every:
            raise ValueError(
                f"{peft_type} is prompt learning: it prepends virtual tokens inside a task model, and a tower is an "
                "encoder called directly (not supported)"
            )
        known = sorted([*classes, *ALIASES])
        raise ValueError(f"unknown peft type '{options.type}' ({closest_hint(asked, known)}known: {', '.join(known)})")
    return classes[peft_type], {**options.config, **flags}


def _with_default_targets(config_class: type, arguments: dict[str, Any], targets: list[str]) -> dict[str, Any]:
    names = {item.name for item in dataclasses.fields(config_class)}
    if "target_modules" not in names or arguments.get("target_modules") is not None:
        return arguments
    defaults: dict[str, Any] = {"target_modules": targets}
    if "feedforward_modules" in names and arguments.get("feedforward_modules") is None:
        defaults["feedforward_modules"] = []  # IA3: query/value are attention, not feed-forward
    return {**arguments, **defaults}


def build_config(options: PeftOptions, targets: list[str]) -> Any:
    """The peft config `options` describe; `ValueError` with peft's own reason when peft refuses it."""
    config_class, arguments = resolve_type(options)
    try:
        return config_class(**_with_default_targets(config_class, arguments, targets))
    except TypeError as error:  # an argument the class does not take
        fields = sorted(item.name for item in dataclasses.fields(config_class) if not item.name.startswith("_"))
        raise ValueError(f"{config_class.__name__}: {error} (it takes: {', '.join(fields)})") from error
    except ValueError as error:
        raise ValueError(f"{config_class.__name__}: {error}") from error


def without_quantized_form(model: Any) -> list[str]:
    """The peft layers of a wrapped model that sit on a quantized (bitsandbytes) base layer but have no form for one:
    peft gives a tuner such a form in its `bnb` module or through a quantization backend; any other layer computes
    with the base weight as if it were a matrix of floats, and fails on the packed integers."""
    found = []
    for name, module in model.named_modules():
        base = getattr(module, "base_layer", None)
        if base is None or not has_quantized_weights(base):
            continue
        if type(module).__module__.endswith(".bnb") or getattr(module, "quantization_backend", None) is not None:
            continue
        found.append(f"{name} ({type(module).__module__}.{type(module).__name__})")
    return found


def quantized_probe_problem(options: PeftOptions, base_precision: str) -> str | None:
    """Why peft's method cannot adapt a quantized base, found by wrapping a probe of two linear layers quantized the
    way a tower's are (on the CPU: bitsandbytes quantizes there too); None when it can, or when bitsandbytes is not
    installed here (the cells are then skipped anyway)."""
    if not bitsandbytes_installed():
        return None
    import torch
    from peft import get_peft_model

    probe = torch.nn.Module()
    probe.query, probe.value = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)
    quantize_linears(probe, base_precision, torch.float32, torch.device("cpu"))
    try:
        wrapped = get_peft_model(probe, build_config(options, ["query", "value"]))
    except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as error:
        return f"peft {options.type} refuses bitsandbytes' layers: {error}"
    unsupported = without_quantized_form(wrapped)
    if unsupported:
        return f"peft {options.type} has no layer for bitsandbytes' quantized linear layers ({unsupported[0]})"
    return None


@register_method
class AnyPeft(EndToEndMethod):
    name = "peft"
    description = "any PEFT method by its own peft config (type + config): DoRA, rsLoRA, IA3, LoHa, LoKr, VeRA, OFT..."
    Options = PeftOptions

    @classmethod
    def options_problems(cls, options: Any) -> list[tuple[tuple[str | int, ...], str]]:
        try:
            resolve_type(options)
        except ValueError as error:
            return [(("type",), str(error))]
        try:
            build_config(options, ["query", "value"])  # the tower's own names are known when it is built
        except ValueError as error:
            return [(("config",), str(error))]
        return []

    @classmethod
    def quantized_base_problem(cls, options: Any, base_precision: str) -> str | None:
        return quantized_probe_problem(options, base_precision)

    def adapt_tower(self, tower: Tower) -> None:
        try:
            wrap_with_peft(tower, build_config(self.options, resolve_query_value(tower.model, tower.label)))
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as error:
            # peft's refusal of this architecture (shapes, layer kinds), named per tower.
            raise TowerError(f"peft {self.options.type} cannot adapt the {tower.label}: {error}") from error
        unsupported = without_quantized_form(tower.model)
        if unsupported:  # validation refuses these; a suite edited since, or another peft version, meets it here
            raise TowerError(
                f"peft {self.options.type} cannot adapt the {tower.label} on its quantized base: "
                f"{len(unsupported)} layer(s) have no form for bitsandbytes' layers, e.g. {unsupported[0]}"
            )
