"""Quantized frozen bases (QLoRA): a tower's linear layers stored in 4 or 8 bits through bitsandbytes.

Every `nn.Linear` of the tower's model becomes bitsandbytes' `Linear4bit` (NF4, double quantization, as the QLoRA
paper and transformers' `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_use_double_quant=True)`) or `Linear8bitLt`
(LLM.int8() with the 6.0 outlier threshold, transformers' default). Embeddings, convolutions (a ViT's patch
embedding) and norms keep their precision, as transformers' bitsandbytes integration leaves them. The weights are
quantized when the tower moves to its device, the way `from_pretrained(quantization_config=...)` ends, so random and
pretrained weights go the same way. Methods adapt the quantized tower afterwards: peft wraps bitsandbytes' layers
with its own LoRA/IA3/... variants for them.

mmbench quantizes on a CUDA GPU only. bitsandbytes also runs on a CPU, but there its layers dequantize in plain
torch ops: a time measured that way says nothing about the kernels QLoRA users run, so such a cell is recorded as
`skipped` with the reason instead (the tests still quantize on the CPU, to check the layers and their byte counts).
"""

from __future__ import annotations

import importlib.util
from typing import get_args

import torch
from torch import nn

from benchmark.models.towers import Tower
from benchmark.suite.config import BasePrecision

BASE_PRECISIONS: tuple[str, ...] = get_args(BasePrecision)
INSTALL_HINT = "pip install 'mmbench[quant]'"
# LLM.int8()'s outlier threshold: activations above it go through an fp16 matmul (transformers' default).
INT8_OUTLIER_THRESHOLD = 6.0
_QUANTIZED_PARAMETER_TYPES = ("Params4bit", "Int8Params")


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def unavailable_reason(base_precision: str | None, device: torch.device) -> str | None:
    """Why a cell with this base precision cannot run on `device` here (its row is then `skipped`), or None."""
    if base_precision is None:
        return None
    if device.type != "cuda":
        return (
            f"base_precision {base_precision} needs a CUDA GPU (bitsandbytes' quantized kernels); this cell's device "
            f"is {device.type}, where bitsandbytes dequantizes in plain torch ops and would not measure them"
        )
    if not bitsandbytes_installed():
        return f"base_precision {base_precision} needs bitsandbytes, which is not installed here ({INSTALL_HINT})"
    return None


def is_quantized(parameter: torch.Tensor) -> bool:
    """A bitsandbytes weight (4-bit or 8-bit), told by its type's name so that nothing imports bitsandbytes here."""
    return type(parameter).__name__ in _QUANTIZED_PARAMETER_TYPES


def _quantized_linear(linear: nn.Linear, base_precision: str, compute_dtype: torch.dtype) -> nn.Module:
    import bitsandbytes as bnb

    weight = linear.weight.data
    bias = linear.bias
    layer: nn.Module
    if base_precision == "nf4":
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=bias is not None,
            compute_dtype=compute_dtype,
            compress_statistics=True,  # double quantization: the block scales quantized too
            quant_type="nf4",
            quant_storage=torch.uint8,
            device="meta",  # the layer's own weight is replaced below: never allocate it
        )
        layer.weight = bnb.nn.Params4bit(
            weight, requires_grad=False, compress_statistics=True, quant_type="nf4", quant_storage=torch.uint8
        )
    else:
        layer = bnb.nn.Linear8bitLt(
            linear.in_features,
            linear.out_features,
            bias=bias is not None,
            has_fp16_weights=False,  # int8 weights that nothing trains
            threshold=INT8_OUTLIER_THRESHOLD,
            device="meta",
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.data, requires_grad=False)
    return layer


def quantize_tower(
    tower: Tower, base_precision: str, compute_dtype: torch.dtype, device: torch.device | None = None
) -> int:
    """Replace every `nn.Linear` of the tower's model by its bitsandbytes form; how many were replaced. With
    `device`, the new layers move there and are quantized now: a method that reads the quantized weights when it
    adapts the tower (DoRA's weight norm) finds them so, as after `from_pretrained(quantization_config=...)`.
    Without, they are quantized when the tower moves to its device (a hidden-state cache build). The tower's
    identity names the precision, so a hidden-state cache of the quantized tower is never taken for the
    full-precision one's."""
    replaced = quantize_linears(tower.model, base_precision, compute_dtype, device)
    tower.identity = f"{tower.identity}|base={base_precision}"
    return replaced


def quantize_linears(
    model: nn.Module, base_precision: str, compute_dtype: torch.dtype, device: torch.device | None = None
) -> int:
    """`quantize_tower` on any module: every `nn.Linear` in it replaced; how many were."""
    if base_precision not in BASE_PRECISIONS:
        raise ValueError(f"base_precision must be one of {BASE_PRECISIONS}, got {base_precision!r}")
    linears = [(name, module) for name, module in model.named_modules() if type(module) is nn.Linear]
    for name, linear in linears:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = _quantized_linear(linear, base_precision, compute_dtype)
        setattr(parent, child, layer.to(device) if device is not None else layer)
    # What transformers sets on a model it loaded through bitsandbytes, and what peft reads to give its adapters
    # their forms for bitsandbytes' layers (LoRA's Linear4bit, IA3's Linear8bitLt, ...).
    setattr(model, "is_loaded_in_4bit", base_precision == "nf4")  # noqa: B010 - nn.Module types its attributes
    setattr(model, "is_loaded_in_8bit", base_precision == "int8")  # noqa: B010
    return len(linears)


def cast_unquantized(module: nn.Module, dtype: torch.dtype) -> None:
    """`module.to(dtype)` for everything but bitsandbytes' weights, which hold packed integers a cast would
    destroy (transformers refuses `.to(dtype)` on a quantized model for the same reason)."""
    for parameter in module.parameters():
        if parameter.is_floating_point() and not is_quantized(parameter):
            parameter.data = parameter.data.to(dtype)
    for owner in module.modules():
        for name, buffer in owner.named_buffers(recurse=False):
            if buffer.is_floating_point():
                setattr(owner, name, buffer.to(dtype))  # nn.Module keeps it a buffer (persistent or not)


def has_quantized_weights(module: nn.Module) -> bool:
    return any(is_quantized(parameter) for parameter in module.parameters())
