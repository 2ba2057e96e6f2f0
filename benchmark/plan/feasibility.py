"""What validation can know about a cell before it runs, from the tower presets and the data alone: the layer plan
a side-network method will build, and a lower bound on the memory one step needs.

The memory figure is a *lower bound* on what one training (or evaluation) step holds at once, so that refusing a
suite whose bound exceeds the machine's memory never refuses one that would fit:

- SASRec's attention mask, `rows x max_seq_len^2` bytes (a bool per query/key pair): rows is the training batch,
  or the evaluation batch (users scored at once), whichever is larger;
- the towers' outputs for every item slot a step encodes, `slots x tokens x hidden x bytes per value` per tower
  (cached methods: the cached `hidden` states, fp16), where slots is `batch x (max_seq_len + 1)` with static step
  shapes (padding slots are encoded too) and at most `batch x (longest sequence + 1)` otherwise.

Attention scores, the towers' other layers, gradients and optimizer state all come on top; the bound is far below
the real need, and only a configuration whose bound already exceeds the machine is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from benchmark.errors import TowerError
from benchmark.estimate.devices import visible_gpu
from benchmark.methods.side_encoder import SideNetworkMethod, SidePlan
from benchmark.modalities.registry import get_modality
from benchmark.models.hub import HubWeightsMissing, checkpoint_directory
from benchmark.models.presets_registry import get_preset

GIB = 1024**3
# max_seq_len beyond this many times the longest history (and beyond it by SLACK items) is mostly padding.
FAR_BEYOND_FACTOR = 4
FAR_BEYOND_SLACK = 16


@dataclass(frozen=True)
class TowerShape:
    """What a tower preset says about the tower's size, without building it. Duck-types the attributes of
    `benchmark.models.towers.Tower` that methods' layer plans read."""

    modality: str
    preset_name: str
    num_layers: int
    hidden_size: int
    tokens: int  # tokens per item the tower attends over; 1 where unknown (a lower bound)

    @property
    def label(self) -> str:
        return f"{self.modality} tower '{self.preset_name}'"


def tower_shape(modality: str, tower: dict[str, Any]) -> TowerShape | None:
    """The shape of a suite's tower entry: the preset's architecture, or a local checkpoint's own config.json;
    None for a config that does not name its layers and width at the top level (a plug-in's preset)."""

    config = dict(get_preset(tower["preset"]).config)
    try:
        checkpoint = checkpoint_directory(tower["weights"], tower.get("revision"))
    except HubWeightsMissing:  # reported by the entry checks
        checkpoint = None
    if checkpoint is not None and (checkpoint / "config.json").is_file():
        config.update(_checkpoint_config(checkpoint / "config.json"))
    if not isinstance(config.get("num_hidden_layers"), int) or not isinstance(config.get("hidden_size"), int):
        return None
    tokens = get_modality(modality).sequence_length(tower, config)
    return TowerShape(modality, tower["preset"], int(config["num_hidden_layers"]), int(config["hidden_size"]), tokens)


def _checkpoint_config(path: Path) -> dict[str, Any]:
    """A local checkpoint's config.json; empty when unreadable: the cell reports an unreadable checkpoint, and the
    preset's shape stands in here."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def plan_problem(method_class: Any, options: Any, towers: dict[str, TowerShape], embed_dim: int) -> str | None:
    """Why a side-network method cannot build its layer plan on these towers (hidden-state indices that do not
    exist, groups a tower cannot be split into, towers IISAN cannot pair), or None: the method's own checks, run on
    the presets' shapes, so that validation and the cell agree."""

    if not (isinstance(method_class, type) and issubclass(method_class, SideNetworkMethod)):
        return None
    method = method_class(options)
    modules = cast(dict[str, Any], towers)  # the plan reads only the shape attributes TowerShape carries
    try:
        plan = SidePlan(modules, method.layer_plan(modules), method.uses_cache, embed_dim)
        method.check_plan(plan)
    except TowerError as error:
        return str(error)
    except AttributeError:
        return None  # a plan that reads more than the shape (a plug-in method): the cell checks it
    return None


@dataclass(frozen=True)
class StepMemory:
    mask_bytes: int
    mask_rows: int
    tower_bytes: int
    slots: int

    @property
    def total(self) -> int:
        return self.mask_bytes + self.tower_bytes

    def explain(self, max_seq_len: int) -> str:
        return (
            f"at least {self.total / GIB:.1f} GiB a step: SASRec's attention mask {self.mask_rows} x {max_seq_len}^2 "
            f"bytes = {self.mask_bytes / GIB:.1f} GiB, the towers' outputs for {self.slots} encoded item slots "
            f"{self.tower_bytes / GIB:.1f} GiB"
        )


def encoded_slots(batch: int, max_seq_len: int, shapes: str, longest: int, unique_items: bool, n_items: int) -> int:
    """Item slots one training step encodes (a lower bound where they depend on the batch drawn)."""
    if shapes == "static" and not unique_items:
        return batch * (max_seq_len + 1)
    slots = batch * min(max_seq_len + 1, longest)
    return min(slots, n_items) if unique_items else slots


def step_memory(
    *,
    batch: int,
    eval_rows: int,
    max_seq_len: int,
    slots: int,
    towers: list[TowerShape],
    value_bytes: int,
    cached: bool,
) -> StepMemory:
    rows = max(batch, eval_rows)
    mask = rows * max_seq_len * max_seq_len
    if cached:
        per_slot = sum(tower.hidden_size * 2 for tower in towers)  # fp16 cached states, at least one per tower
    else:
        per_slot = sum(tower.tokens * tower.hidden_size * value_bytes for tower in towers)
    return StepMemory(mask, rows, slots * per_slot, slots)


def far_beyond(max_seq_len: int, longest_history: int) -> bool:
    """max_seq_len so far above the longest history the data has that nearly every position is padding."""
    return max_seq_len > FAR_BEYOND_FACTOR * longest_history and max_seq_len > longest_history + FAR_BEYOND_SLACK


def memory_limit(device: str) -> tuple[int, str] | None:
    """(bytes, what) of the memory a cell on `device` gets: the largest GPU where one is visible to NVML (no CUDA
    context: `mmbench run` must not hold one while its cells are measured), else host memory for cpu and auto;
    None where it cannot be told here (device cuda on a machine without a GPU)."""
    if device != "cpu":
        gpu = largest_gpu()
        if gpu is not None:
            return gpu
        if device == "cuda":
            return None
    import psutil

    return int(psutil.virtual_memory().total), "host memory"


def largest_gpu() -> tuple[int, str] | None:
    visible = visible_gpu()
    return (visible[1], f"GPU memory ({visible[0]})") if visible is not None else None


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
