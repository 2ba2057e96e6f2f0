"""The plain loop's model of a cell: item encoder (towers end to end, or a side network), SASRec user, in-batch loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from bench.overhead.plain_towers import (
    Bottleneck,
    Unsupported,
    adapt,
    build_tower,
    config_of,
    load_preset,
)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SIDE_METHODS = {"iisan", "iisan_cached", "iisan_versa", "iisan_versa_cached", "crossan", "crossan_cached"}

# torch types a module call as Any: a forward binds the result to an annotated name rather than casting it, so that
# the reference loop makes no extra call per step.

# ---------------------------------------------------------------------------------------------------- item encoders


class EndToEnd(nn.Module):
    """Each tower's first-token state through Linear(h, d); the concatenation through Linear(2d, d)."""

    def __init__(self, text: nn.Module, image: nn.Module, dim: int):
        super().__init__()
        self.text, self.image = text, image
        self.text_head = nn.Linear(config_of(text).hidden_size, dim)
        self.image_head = nn.Linear(config_of(image).hidden_size, dim)
        self.fusion = nn.Linear(2 * dim, dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        text = self.text(input_ids=inputs["ids"], attention_mask=inputs["mask"]).last_hidden_state[:, 0]
        image = self.image(pixel_values=inputs["pixels"]).last_hidden_state[:, 0]
        fused: torch.Tensor = self.fusion(torch.cat([self.text_head(text), self.image_head(image)], dim=-1))
        return fused


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
        fused: torch.Tensor = self.fusion(torch.cat(parts, dim=-1))
        return fused


class CROSSANSide(nn.Module):
    """CROSSAN as mmbench describes it: block i of modality m reads its tower's state plus a softmax mixture of all
    modalities' block i-1 outputs; MOMEF fusion (an expert FFN per modality, a softmax router over them)."""

    def __init__(self, modalities: int, blocks: int, width: int, dim: int, options: dict[str, Any]):
        super().__init__()
        bottleneck, activation = options.get("bottleneck", 64), options.get("activation", "gelu")
        hidden = options.get("expert_hidden", 256)
        # One block list per modality, declared as such: torch types a ModuleList's items as Module.
        self.side: Sequence[nn.ModuleList] = cast(
            "Sequence[nn.ModuleList]",
            nn.ModuleList(
                nn.ModuleList(Bottleneck(width, bottleneck, activation) for _ in range(blocks))
                for _ in range(modalities)
            ),
        )
        self.mixing = nn.Parameter(torch.zeros(blocks, modalities, modalities))
        if options.get("fusion", "momef") != "momef":
            raise Unsupported("CROSSAN with a fusion other than momef")
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
        encoded: torch.Tensor = self.side(*self.states(inputs))
        return encoded


# ---------------------------------------------------------------------------------------------------- recommender


class UserEncoder(nn.Module):
    """SASRec, pre-LN: positions, LayerNorm, dropout; blocks of h + attn(LN h), h + ffn(LN h) (d-wide GELU); LN."""

    def __init__(self, dim: int, layers: int, heads: int, length: int, dropout: float):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.positions, self.norm_in = nn.Embedding(length, dim), nn.LayerNorm(dim)
        # Declared as the blocks they are: torch types a ModuleList's items as Module.
        self.blocks: Sequence[nn.ModuleDict] = cast(
            "Sequence[nn.ModuleDict]",
            nn.ModuleList(
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
            ),
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
        users: torch.Tensor = self.norm_out(x)
        return users


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
    towers_config = cell["towers"]
    _check_covered(train, towers_config)
    presets = {m: load_preset(towers_config[m]["preset"]) for m in ("text", "image")}
    seed, dim = cell["seed"], train["embed_dim"]
    towers = {
        m: build_tower(presets[m], towers_config[m].get("image_size"), seed * 16 + {"text": 0, "image": 1}[m])
        for m in ("text", "image")
    }
    shape = _data_shape(towers_config, presets, towers, name)
    if name in SIDE_METHODS:
        item_encoder: nn.Module = _side_encoder(towers, name, options, train, dim, shape)
    else:
        if options.get("fusion", "concat") != "concat":
            raise Unsupported("an end-to-end method with a fusion other than concat")
        adapted = {m: adapt(t, name, options) for m, t in towers.items()}
        item_encoder = EndToEnd(adapted["text"], adapted["image"], dim)
    model = PlainModel(
        item_encoder, dim, train["user_layers"], train["user_heads"], train["max_seq_len"], train["dropout"]
    )
    return model, shape


def _check_covered(train: dict[str, Any], towers_config: dict[str, Any]) -> None:
    """Refuse (Unsupported) a cell whose step shapes, user encoder or tower set the plain loop does not build."""
    if train.get("step_shapes", "static") != "static":
        raise Unsupported("the plain loop encodes every position (static step shapes)")
    if train.get("user_encoder", "pre-ln") != "pre-ln" or train.get("unique_items"):
        raise Unsupported("the plain loop has the pre-LN user encoder and encodes every position")
    if train.get("sequence_model", "sasrec") != "sasrec" or train.get("objective", "softmax") != "softmax":
        raise Unsupported("the plain loop has SASRec and in-batch softmax")
    if set(towers_config) - {"name"} != {"text", "image"}:
        raise Unsupported("the plain loop covers text + image tower sets")


def _data_shape(
    towers_config: dict[str, Any], presets: dict[str, dict[str, Any]], towers: dict[str, nn.Module], name: str
) -> dict[str, Any]:
    """What the cell's random data looks like: token count, image size and normalisation, vocabulary, state width."""
    return {
        "tokens": towers_config["text"].get("max_tokens", 30),
        "image_size": config_of(towers["image"]).image_size,
        "image_mean": presets["image"].get("image_mean", [0.5] * 3),
        "image_std": presets["image"].get("image_std", [0.5] * 3),
        "vocab": config_of(towers["text"]).vocab_size,
        "width": config_of(towers["text"]).hidden_size,
        "cached": name.endswith("_cached"),
    }


def _side_encoder(
    towers: dict[str, nn.Module],
    name: str,
    options: dict[str, Any],
    train: dict[str, Any],
    dim: int,
    shape: dict[str, Any],
) -> SideEncoder:
    """The method's side network over the towers' states: frozen towers run in the step, or (cached) states read from
    the data; records the number of kept states in `shape`."""
    width = {m: config_of(t).hidden_size for m, t in towers.items()}
    depth = {m: config_of(t).num_hidden_layers for m, t in towers.items()}
    if width["text"] != width["image"] or depth["text"] != depth["image"]:
        raise Unsupported("the plain loop's side networks need towers of one width and depth")
    indices, side = _side_network(name, options, depth["text"], width["text"], dim)
    shape["blocks"] = len(indices)
    frozen = None
    if not shape["cached"]:
        frozen = towers
        for tower in towers.values():
            tower.requires_grad_(False).eval()
            if train.get("frozen_weights", "compute") == "compute" and train["precision"] != "fp32":
                tower.to(DTYPES[train["precision"]])  # a frozen feature extractor, stored as it computes
    return SideEncoder(frozen, indices, side)


def _side_network(name: str, options: dict[str, Any], layers: int, width: int, dim: int) -> tuple[list[int], nn.Module]:
    """The tower layers whose first-token states the method reads, and its side network over them."""
    if name.startswith("crossan"):
        blocks = options.get("blocks") or max(layers // 2, 1)
        indices = [0] + [round(layers * g / blocks) for g in range(1, blocks + 1)]
        return indices, CROSSANSide(2, len(indices), width, dim, options)
    if name.startswith("iisan_versa"):
        if options.get("fusion", "concat") != "concat":
            raise Unsupported("IISAN-Versa with a fusion other than concat")
        groups = options.get("groups") or max(layers // 2, 1)
        indices = [0] + [round(layers * g / groups) for g in range(1, groups + 1)]
        return indices, IISANSide(len(indices), width, dim, options)
    if options.get("fusion", "concat") != "concat":
        raise Unsupported("IISAN with a fusion other than concat")
    indices = list(options.get("layers") or range(0, layers + 1, options.get("layer_stride", 2)))
    return indices, IISANSide(len(indices), width, dim, options)
