"""A plain PyTorch training loop for every method mmbench measures, written from the methods' descriptions.

It is the yardstick of mmbench's harness overhead (`make bench-overhead`): the same towers, method, side network,
user encoder, loss, optimizer, precision and shapes as one mmbench cell, in the simplest loop a researcher would
write — random data of the cell's shapes, a batch copied to the device inside each step, `synchronize` around every
step. It imports nothing of mmbench's methods, trainer, data or profiler: a bug or an overhead there cannot hide in
both sides of the comparison. It reads the cell's JSON (a plain dict) and the shipped tower configs (JSON files).

Covered: fft, lora, adapter, bitfit, iisan(_cached), iisan_versa(_cached) on towers of one width and depth (where
IISAN-Versa is IISAN), crossan(_cached); encoder towers (BERT, ViT); static step shapes.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PRESETS = Path(__file__).resolve().parents[1] / "models" / "presets"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SIDE_METHODS = {"iisan", "iisan_cached", "iisan_versa", "iisan_versa_cached", "crossan", "crossan_cached"}
TOWER_CLASSES = {"bert": "BertModel", "vit": "ViTModel"}


class Unsupported(Exception):
    """This cell is outside what the plain loop covers; the message says why."""


# ---------------------------------------------------------------------------------------------------- towers


def load_preset(name: str) -> dict[str, Any]:
    path = PRESETS / f"{name}.json"
    if not path.is_file():
        raise Unsupported(f"no shipped tower config '{name}'")
    preset: dict[str, Any] = json.loads(path.read_text())
    if preset["model_type"] not in TOWER_CLASSES:
        raise Unsupported(f"tower '{name}' ({preset['model_type']}): the plain loop builds BERT and ViT towers")
    return preset


def build_tower(preset: dict[str, Any], image_size: int | None, seed: int) -> nn.Module:
    import transformers

    values = dict(preset["config"])
    if preset["modality"] == "image" and image_size:
        values["image_size"] = image_size
    config = transformers.AutoConfig.for_model(preset["model_type"], **values)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return getattr(transformers, TOWER_CLASSES[preset["model_type"]])(config, add_pooling_layer=False)


class Bottleneck(nn.Module):
    """x + up(act(down(x)))."""

    def __init__(self, width: int, bottleneck: int, activation: str, zero_up: bool = False):
        super().__init__()
        self.down, self.up = nn.Linear(width, bottleneck), nn.Linear(bottleneck, width)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        if zero_up:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class WithAdapter(nn.Module):
    def __init__(self, projection: nn.Linear, adapter: Bottleneck):
        super().__init__()
        self.projection, self.adapter = projection, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.projection(x))


class ShiftOnlyLayerNorm(nn.Module):
    """LayerNorm with a frozen scale and a training shift, the affine part applied outside the fused kernel (CUDA's
    fused backward returns an empty bias gradient for more than 65,536 rows when the weight needs none)."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.shape, self.eps, self.weight, self.bias = norm.normalized_shape, norm.eps, norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, None, None, self.eps) * self.weight + self.bias


def adapt(tower: nn.Module, method: str, options: dict[str, Any]) -> nn.Module:
    """FFT, LoRA, Houlsby adapters or BitFit on one tower; returns the (possibly wrapped) tower."""
    if method == "fft":
        return tower
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        names = {name.rsplit(".", 1)[-1] for name, module in tower.named_modules() if isinstance(module, nn.Linear)}
        targets = ["query", "value"] if "query" in names else ["q_proj", "v_proj"]
        lora = LoraConfig(
            r=options.get("r", 8),
            lora_alpha=options.get("alpha", 16),
            lora_dropout=options.get("dropout", 0.0),
            target_modules=targets,
            bias="none",
        )
        with warnings.catch_warnings():  # peft asks for transformers' deprecated `is_gradient_checkpointing`
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(tower, lora)
    if method == "adapter":
        # After each layer's attention output projection and feed-forward output projection (names by transformers
        # version: BERT/ViT `attention.output.dense` + `output.dense`, newer ViT `attention.o_proj` + `mlp.fc2`).
        pattern = re.compile(r"(attention\.output\.dense|attention\.o_proj|\.\d+\.output\.dense|mlp\.fc2)$")
        for name, module in list(tower.named_modules()):
            if isinstance(module, nn.Linear) and pattern.search(name):
                parent_name, _, child = name.rpartition(".")
                adapter = Bottleneck(
                    module.out_features, options.get("bottleneck", 64), options.get("activation", "gelu"), True
                )
                setattr(tower.get_submodule(parent_name), child, WithAdapter(module, adapter))
        return tower
    if method == "bitfit":
        for name, parameter in tower.named_parameters():
            parameter.requires_grad_(name.endswith("bias"))
        for name, module in list(tower.named_modules()):
            if type(module) is nn.LayerNorm:
                parent_name, _, child = name.rpartition(".")
                parent = tower.get_submodule(parent_name) if parent_name else tower
                setattr(parent, child, ShiftOnlyLayerNorm(module))
        return tower
    raise Unsupported(f"method '{method}'")


# ---------------------------------------------------------------------------------------------------- item encoders


class EndToEnd(nn.Module):
    """Each tower's first-token state through Linear(h, d); the concatenation through Linear(2d, d)."""

    def __init__(self, text: nn.Module, image: nn.Module, dim: int):
        super().__init__()
        self.text, self.image = text, image
        self.text_head = nn.Linear(text.config.hidden_size, dim)
        self.image_head = nn.Linear(image.config.hidden_size, dim)
        self.fusion = nn.Linear(2 * dim, dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        text = self.text(input_ids=inputs["ids"], attention_mask=inputs["mask"]).last_hidden_state[:, 0]
        image = self.image(pixel_values=inputs["pixels"]).last_hidden_state[:, 0]
        return self.fusion(torch.cat([self.text_head(text), self.image_head(image)], dim=-1))


class IISANSide(nn.Module):
    """IISAN's side network, path by path: text and image intra-modal SANs (block i reads g h_i + (1 - g) s), the
    inter-modal SAN (u + g h_image + (1 - g) h_text), heads Linear(w, w) -> Linear(w, d), fusion Linear(3d, d)."""

    def __init__(self, blocks: int, width: int, dim: int, options: dict[str, Any]):
        super().__init__()
        bottleneck, activation = options.get("bottleneck", 64), options.get("activation", "gelu")

        def san() -> nn.ModuleList:
            return nn.ModuleList(Bottleneck(width, bottleneck, activation) for _ in range(blocks))

        self.text_blocks, self.text_gates = san(), nn.Parameter(torch.zeros(blocks))
        self.image_blocks, self.image_gates = san(), nn.Parameter(torch.zeros(blocks))
        self.inter_blocks, self.inter_gates = san(), nn.Parameter(torch.zeros(blocks))
        if options.get("init", "default") == "reference":
            for block in [*self.text_blocks, *self.image_blocks, *self.inter_blocks]:
                for linear in (block.down, block.up):
                    nn.init.normal_(linear.weight, std=0.01)
                    nn.init.zeros_(linear.bias)
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.Linear(width, dim)) for _ in range(3))
        self.fusion = nn.Linear(3 * dim, dim)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        s_text = s_image = u = torch.zeros_like(text[:, 0])
        for i in range(text.shape[1]):
            g_t, g_v, g_m = (
                torch.sigmoid(gates[i] / 0.1) for gates in (self.text_gates, self.image_gates, self.inter_gates)
            )
            s_text = self.text_blocks[i](g_t * text[:, i] + (1 - g_t) * s_text)
            s_image = self.image_blocks[i](g_v * image[:, i] + (1 - g_v) * s_image)
            u = self.inter_blocks[i](u + g_m * image[:, i] + (1 - g_m) * text[:, i])
        parts = [head(x) for head, x in zip(self.heads, (s_text, s_image, u), strict=True)]
        return self.fusion(torch.cat(parts, dim=-1))


class CROSSANSide(nn.Module):
    """CROSSAN as mmbench describes it: block i of modality m reads its tower's state plus a softmax mixture of all
    modalities' block i-1 outputs; MOMEF fusion (an expert FFN per modality, a softmax router over them)."""

    def __init__(self, modalities: int, blocks: int, width: int, dim: int, options: dict[str, Any]):
        super().__init__()
        bottleneck, activation = options.get("bottleneck", 64), options.get("activation", "gelu")
        hidden = options.get("expert_hidden", 256)
        self.side = nn.ModuleList(
            nn.ModuleList(Bottleneck(width, bottleneck, activation) for _ in range(blocks)) for _ in range(modalities)
        )
        self.mixing = nn.Parameter(torch.zeros(blocks, modalities, modalities))
        if options.get("fusion", "momef") != "momef":
            raise Unsupported("CROSSAN with concat fusion")
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, dim)) for _ in range(modalities)
        )
        self.router = nn.Linear(modalities * width, modalities)

    def forward(self, *states: torch.Tensor) -> torch.Tensor:
        outputs = [torch.zeros_like(s[:, 0]) for s in states]
        for i in range(states[0].shape[1]):
            weights = torch.softmax(self.mixing[i], dim=-1)
            outputs = [
                self.side[m][i](states[m][:, i] + sum(weights[m, k] * outputs[k] for k in range(len(states))))
                for m in range(len(states))
            ]
        route = torch.softmax(self.router(torch.cat(outputs, dim=-1)), dim=-1)
        experts = torch.stack([expert(x) for expert, x in zip(self.experts, outputs, strict=True)], dim=1)
        return (route.unsqueeze(-1) * experts).sum(dim=1)


class SideEncoder(nn.Module):
    """Frozen towers (uncached, run without a graph) or cached states -> the kept first-token states -> side network."""

    def __init__(self, towers: dict[str, nn.Module] | None, indices: list[int], side: nn.Module):
        super().__init__()
        self.towers = nn.ModuleDict(towers) if towers is not None else None
        self.indices, self.side = indices, side

    def states(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.towers is None:
            return inputs["text_states"].float(), inputs["image_states"].float()
        with torch.no_grad():
            text = self.towers["text"](
                input_ids=inputs["ids"], attention_mask=inputs["mask"], output_hidden_states=True
            )
            image = self.towers["image"](pixel_values=inputs["pixels"], output_hidden_states=True)
            return (
                torch.stack([text.hidden_states[i][:, 0] for i in self.indices], dim=1).float(),
                torch.stack([image.hidden_states[i][:, 0] for i in self.indices], dim=1).float(),
            )

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.side(*self.states(inputs))


# ---------------------------------------------------------------------------------------------------- recommender


class UserEncoder(nn.Module):
    """SASRec, pre-LN: positions, LayerNorm, dropout; blocks of h + attn(LN h), h + ffn(LN h) (d-wide GELU); LN."""

    def __init__(self, dim: int, layers: int, heads: int, length: int, dropout: float):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.positions, self.norm_in = nn.Embedding(length, dim), nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm1": nn.LayerNorm(dim),
                    "qkv": nn.Linear(dim, 3 * dim),
                    "out": nn.Linear(dim, dim),
                    "norm2": nn.LayerNorm(dim),
                    "ffn1": nn.Linear(dim, dim),
                    "ffn2": nn.Linear(dim, dim),
                }
            )
            for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        p = self.p if self.training else 0.0
        x = F.dropout(self.norm_in(x + self.positions.weight[:n]), p, self.training) * valid.unsqueeze(-1)
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril() & valid[:, None, :]
        mask = (mask | torch.eye(n, dtype=torch.bool, device=x.device)).unsqueeze(1)
        for block in self.blocks:
            q, k, v = block["qkv"](block["norm1"](x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, p)
            x = x + F.dropout(block["out"](a.transpose(1, 2).reshape(b, n, d)), p, self.training)
            h = block["ffn2"](F.dropout(F.gelu(block["ffn1"](block["norm2"](x))), p, self.training))
            x = (x + F.dropout(h, p, self.training)) * valid.unsqueeze(-1)
        return self.norm_out(x)


def in_batch_loss(users: torch.Tensor, items: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
    """Softmax over every item of the batch; the target is the next position's item; items of the user's own sequence
    are not negatives (the target stays)."""
    b, n = sequences.shape
    logits = (users.reshape(b * (n - 1), -1) @ items.T).float()  # [B*L, B*(L+1)]
    flat = sequences.reshape(-1)
    target = torch.arange(b * n, device=flat.device).view(b, n)[:, 1:].reshape(-1)
    own = (sequences.unsqueeze(-1) == flat.view(1, 1, -1)).any(1)  # [B, B*(L+1)]
    own = own.repeat_interleave(n - 1, dim=0)
    own[torch.arange(len(target), device=flat.device), target] = False
    valid = ((sequences[:, :-1] > 0) & (sequences[:, 1:] > 0)).reshape(-1)
    logits = logits.masked_fill(own & valid.unsqueeze(-1), float("-inf"))
    return F.cross_entropy(logits, target.masked_fill(~valid, -100), ignore_index=-100)


class PlainModel(nn.Module):
    def __init__(self, item_encoder: nn.Module, dim: int, layers: int, heads: int, length: int, dropout: float):
        super().__init__()
        self.item_encoder, self.user_encoder = item_encoder, UserEncoder(dim, layers, heads, length, dropout)

    def forward(self, sequences: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        items = self.item_encoder(inputs)
        b, n = sequences.shape
        history = items.view(b, n, -1)[:, :-1]
        return in_batch_loss(self.user_encoder(history, sequences[:, :-1] > 0), items, sequences)


# ---------------------------------------------------------------------------------------------------- the cell


def build_model(cell: dict[str, Any]) -> tuple[PlainModel, dict[str, Any]]:
    """The model of a cell (its JSON as a dict) and what its data looks like."""
    train, method = cell["train"], cell["method"]
    name, options = method["name"], method.get("options") or {}
    if train.get("step_shapes", "static") != "static":
        raise Unsupported("the plain loop encodes every position (static step shapes)")
    if train.get("user_encoder", "pre-ln") != "pre-ln" or train.get("unique_items"):
        raise Unsupported("the plain loop has the pre-LN user encoder and encodes every position")
    towers_config = cell["towers"]
    if set(towers_config) - {"name"} != {"text", "image"}:
        raise Unsupported("the plain loop covers text + image tower sets")
    presets = {m: load_preset(towers_config[m]["preset"]) for m in ("text", "image")}
    seed, dim = cell["seed"], train["embed_dim"]
    towers = {
        m: build_tower(presets[m], towers_config[m].get("image_size"), seed * 16 + {"text": 0, "image": 1}[m])
        for m in ("text", "image")
    }
    width = {m: t.config.hidden_size for m, t in towers.items()}
    depth = {m: t.config.num_hidden_layers for m, t in towers.items()}
    shape = {
        "tokens": towers_config["text"].get("max_tokens", 30),
        "image_size": towers["image"].config.image_size,
        "image_mean": presets["image"].get("image_mean", [0.5] * 3),
        "image_std": presets["image"].get("image_std", [0.5] * 3),
        "vocab": towers["text"].config.vocab_size,
        "width": width["text"],
        "cached": name.endswith("_cached"),
    }
    if name in SIDE_METHODS:
        if width["text"] != width["image"] or depth["text"] != depth["image"]:
            raise Unsupported("the plain loop's side networks need towers of one width and depth")
        layers = depth["text"]
        if name.startswith("crossan"):
            blocks = options.get("blocks") or max(layers // 2, 1)
            indices = [0] + [round(layers * g / blocks) for g in range(1, blocks + 1)]
            side: nn.Module = CROSSANSide(2, len(indices), width["text"], dim, options)
        elif name.startswith("iisan_versa"):
            if options.get("fusion", "concat") != "concat":
                raise Unsupported("IISAN-Versa with MOMEF fusion")
            groups = options.get("groups") or max(layers // 2, 1)
            indices = [0] + [round(layers * g / groups) for g in range(1, groups + 1)]
            side = IISANSide(len(indices), width["text"], dim, options)
        else:
            indices = list(options.get("layers") or range(0, layers + 1, options.get("layer_stride", 2)))
            side = IISANSide(len(indices), width["text"], dim, options)
        shape["blocks"] = len(indices)
        frozen = None
        if not shape["cached"]:
            frozen = towers
            for tower in towers.values():
                tower.requires_grad_(False).eval()
                if train.get("frozen_weights", "compute") == "compute" and train["precision"] != "fp32":
                    tower.to(DTYPES[train["precision"]])  # a frozen feature extractor, stored as it computes
        item_encoder: nn.Module = SideEncoder(frozen, indices, side)
    else:
        adapted = {m: adapt(t, name, options) for m, t in towers.items()}
        item_encoder = EndToEnd(adapted["text"], adapted["image"], dim)
    model = PlainModel(
        item_encoder, dim, train["user_layers"], train["user_heads"], train["max_seq_len"], train["dropout"]
    )
    return model, shape


def host_data(cell: dict[str, Any], shape: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Random item features of the cell's shapes (row 0: padding), in pinned host memory where there is a GPU."""
    items = int(cell["dataset"].get("options", {}).get("items", 1000))
    generator = torch.Generator().manual_seed(cell["seed"])
    if shape["cached"]:
        states = (items + 1, shape["blocks"], shape["width"])
        data = {k: torch.randn(states, generator=generator).half() for k in ("text_states", "image_states")}
    else:
        tokens = shape["tokens"]
        lengths = torch.randint(2, tokens + 1, (items + 1,), generator=generator)
        data = {
            "ids": torch.randint(1000, shape["vocab"], (items + 1, tokens), generator=generator),
            "mask": (torch.arange(tokens).unsqueeze(0) < lengths.unsqueeze(1)).long(),
            "pixels": torch.randint(
                0, 256, (items + 1, 3, shape["image_size"], shape["image_size"]), generator=generator, dtype=torch.uint8
            ),
        }
    data["items"] = torch.tensor(items)
    return data


def batches(
    cell: dict[str, Any], data: dict[str, torch.Tensor], pinned: bool
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Endless random batches of full sequences: [B, L+1] item ids and the features of every position."""
    train = cell["train"]
    items = int(data["items"])
    generator = torch.Generator().manual_seed(cell["seed"] + 1)
    while True:
        sequences = torch.randint(1, items + 1, (train["batch_size"], train["max_seq_len"] + 1), generator=generator)
        flat = sequences.reshape(-1)
        features = {k: v[flat] for k, v in data.items() if k != "items"}
        if pinned:
            sequences, features = sequences.pin_memory(), {k: v.pin_memory() for k, v in features.items()}
        yield sequences, features


def run(
    cell: dict[str, Any],
    device: torch.device,
    warmup: int,
    steps: int,
    around_step: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None,
) -> dict[str, Any]:
    """Train `warmup + steps` steps; time the last `steps`. `around_step(i)` wraps step i (e.g. an operator count)."""
    model, shape = build_model(cell)
    model.to(device).train()
    if isinstance(model.item_encoder, SideEncoder) and model.item_encoder.towers is not None:
        model.item_encoder.towers.eval()
    train = cell["train"]
    precision = train["precision"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train["lr"], weight_decay=train["weight_decay"], fused=True)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
    mean = torch.tensor(shape["image_mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(shape["image_std"], device=device).view(1, 3, 1, 1)
    source = batches(cell, host_data(cell, shape), device.type == "cuda")

    def step(sequences: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        sequences = sequences.to(device, non_blocking=True)
        inputs = {k: v.to(device, non_blocking=True) for k, v in features.items()}
        if "pixels" in inputs:
            inputs["pixels"] = (inputs["pixels"].float() / 255.0 - mean) / std
        with torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32"):
            loss = model(sequences, inputs)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step_ms: list[float] = []
    losses: list[float] = []
    for index in range(warmup + steps):
        sequences, features = next(source)
        with around_step(index) if around_step is not None else contextlib.nullcontext():
            synchronize()
            started = time.perf_counter()
            loss = step(sequences, features)
            synchronize()
            elapsed = (time.perf_counter() - started) * 1000.0
        losses.append(float(loss.detach()))  # after the step's count and clock: reading the loss waits for the device
        if index >= warmup:
            step_ms.append(elapsed)
    return {
        "method": cell["method"]["name"],
        "trainable_params": sum(p.numel() for p in trainable),
        "step_ms": step_ms,
        "losses": losses,
        "finite": all(math.isfinite(value) for value in losses),
    }
