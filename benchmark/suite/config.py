"""The suite's typed configuration: frozen dataclasses, one definition of every key.

Each field's type (with `Literal[...]` for a fixed set of choices), default and metadata (help
text, minimum, dynamic choices) is what `Validator` checks a YAML suite against, and validation
ends in these objects: the rest of the code reads attributes. A cell's configuration goes to its
subprocess as JSON (`CellConfig.to_dict` / `from_dict`), and that JSON is what the config hash
covers, so its shape is the suite's.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    choices: NameKind | None = None,
    factory: Callable[[], Any] | None = None,
    flattened: bool = False,
) -> Any:
    """A dataclass field with what validation needs to know: help text, minimum, the registry its names come from.

    A `flattened` field is a `dict[str, X]` whose entries are written at the level of the mapping itself,
    one per name in `choices` (a tower set's `text:`, `image:`, ... are its `by_modality` entries), so
    that a new choice (a registered modality) needs no new field.
    """
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices, "flattened": flattened}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# Which registry a name field's values come from (see `benchmark.catalog`): the suite's types import no registry,
# the validator that checks them is handed the catalog's names.
NameKind = Literal[
    "methods", "presets", "modalities", "formats", "launchers", "sequence_models", "objectives", "fusions"
]
NamesOf = Callable[[str], list[str]]  # a kind -> its registered names (benchmark.catalog.names)
OptionsOf = Callable[[str], type]  # a method's name -> its options dataclass (benchmark.catalog.method_options)


Precision = Literal["fp32", "bf16", "fp16"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
# inductor's modes that capture the compiled graph in CUDA graphs
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
StepShapes = Literal["static", "bucketed", "dynamic"]
FrozenWeights = Literal["compute", "fp32"]
BasePrecision = Literal["nf4", "int8"]  # benchmark/models/quantized_base.py
UserEncoderStyle = Literal["pre-ln", "post-ln"]  # benchmark/train/sasrec.py
Device = Literal["auto", "cpu", "cuda"]
DistributedStrategy = Literal["none", "ddp", "fsdp"]  # benchmark/train/distributed/
DistributedBackend = Literal["auto", "gloo", "nccl"]


@dataclass(frozen=True)
class TowerConfig:
    preset: str = setting(help="shipped architecture config", choices="presets")
    weights: str = setting(
        "random",
        help="'random' (architecture only, offline), a local directory of a pretrained checkpoint, or a Hub id "
        "(owner/name, read from the Hub cache; downloaded only with allow_download: true)",
    )
    revision: str | None = setting(
        None, help="a Hub id's branch, tag or commit (default: main); validation replaces it with the commit"
    )
    max_tokens: int = setting(30, minimum=2, help="text length in tokens (text towers)")
    image_size: int | None = setting(
        None, minimum=8, help="image/frame side in pixels (image and video towers); default from the preset"
    )


@dataclass(frozen=True)
class TowerSetConfig:
    name: str = setting(help="label used in cell ids and reports")
    # Written at the top level of the set (`{name: pair, text: {...}, image: {...}}`): one tower per modality.
    by_modality: dict[str, TowerConfig] = setting(
        help="one tower per registered modality", choices="modalities", factory=dict, flattened=True
    )

    def present(self, order: list[str]) -> dict[str, TowerConfig]:
        """The towers this set has, by modality, in `order` (the modality registry's: `modality_names()`)."""
        return {modality: self.by_modality[modality] for modality in order if modality in self.by_modality}

    def get(self, modality: str) -> TowerConfig | None:
        return self.by_modality.get(modality)


@dataclass(frozen=True)
class DatasetConfig:
    name: str = setting(help="label used in cell ids and reports")
    format: str = setting("synthetic", choices="formats")
    path: str | None = setting(
        None, help="dataset directory (real formats); synthetic data is generated under the cache"
    )
    encoding: str = setting(
        "utf-8",
        help="text encoding of the dataset's files (e.g. latin-1); bad bytes are reported with file, line and offset",
    )
    options: dict[str, Any] = setting(help="format options, e.g. synthetic users/items/clusters", factory=dict)
    noise: float = setting(
        0.0,
        minimum=0.0,
        maximum=1.0,
        help="fraction of training interactions replaced by random other items (validation and test targets stay "
        "clean): what a denoising objective should win back",
    )
    noise_seed: int = setting(0, help="seed of the noise: the same noisy data for every cell, method and seed")


@dataclass(frozen=True)
class MethodConfig:
    name: str = setting(choices="methods")
    label: str | None = setting(None, help="name shown in reports; needed when a method appears twice")
    # Validated against, then replaced by, the method's own frozen options dataclass (`Method.Options`).
    options: Any = setting(help="method hyper-parameters (see `mmbench list methods`)", factory=dict)
    towers: tuple[str, ...] = setting((), help="run only with these tower sets (default: all)")
    base_precision: BasePrecision | None = setting(
        None,
        help="store the towers' linear layers quantized, frozen (QLoRA): nf4 (4-bit NormalFloat, double quantization) "
        "or int8 (LLM.int8()), through bitsandbytes on a CUDA GPU (pip install 'mmbench[quant]'); elsewhere the "
        "cell's row is skipped with the reason. Not for methods that train the base weights (fft)",
    )


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = setting(32, minimum=1, help="sequences per optimizer step")
    max_seq_len: int = setting(10, minimum=1, help="history items per sequence (plus one target)")
    epochs: int = setting(1, minimum=1)
    max_steps: int | None = setting(None, minimum=1, help="stop after this many steps; epoch time is then estimated")
    warmup_steps: int = setting(3, minimum=0, help="steps run before timing starts (excluded, recorded)")
    lr: float = setting(1e-4, minimum=0)
    weight_decay: float = setting(0.01, minimum=0)
    precision: Precision = setting("fp32")
    device: Device = setting("auto")
    unique_items: bool = setting(
        False, help="encode each distinct item of a batch once (the IISAN paper encodes every position)"
    )
    logq_correction: bool = setting(False, help="subtract log item popularity from in-batch logits")
    user_encoder: UserEncoderStyle = setting(
        "pre-ln",
        help="SASRec blocks: pre-ln (LayerNorm first, d-wide GELU feed-forward, final LayerNorm) or post-ln (the "
        "IISAN code's: LayerNorm after each residual, bias-free attention projections, 4d-wide ReLU feed-forward, "
        "Xavier init)",
    )
    sequence_model: str = setting(
        "sasrec",
        help="the user encoder over a history: sasrec, gru4rec, nextitnet, bert4rec, or a plug-in's (`mmbench list "
        "sequence-models`)",
        choices="sequence_models",
    )
    sequence_options: dict[str, Any] = setting(
        factory=dict,
        help="hyper-parameters by sequence model, e.g. {nextitnet: {dilations: [1, 4]}}; a cell keeps its own model's",
    )
    objective: str = setting(
        "softmax",
        help="the training loss: softmax (in-batch), sampled_softmax, bce, bpr, guider, or a plug-in's (`mmbench list "
        "objectives`)",
        choices="objectives",
    )
    objective_options: dict[str, Any] = setting(
        factory=dict, help="hyper-parameters by objective, e.g. {bce: {negatives: 4}}; a cell keeps its own objective's"
    )
    user_layers: int = setting(2, minimum=1)
    user_heads: int = setting(2, minimum=1)
    embed_dim: int = setting(64, minimum=1)
    dropout: float = setting(0.1, minimum=0)
    nvml_hz: float = setting(200.0, minimum=1, help="NVML sampling rate")
    num_workers: int | None = setting(
        None,
        minimum=0,
        help="DataLoader worker processes preparing batches (default: 0 on a CPU, "
        "where workers would take the cores training times; min(4, cores - 1) on a GPU)",
    )
    compile: bool = setting(
        False,
        help="run the training loss through torch.compile (compile time is recorded apart from the measured steps; "
        "falls back to eager with a warning where compilation cannot run)",
    )
    compile_backend: str = setting("inductor", help="torch.compile backend (inductor; aot_eager compiles no code)")
    compile_mode: CompileMode = setting(
        "default",
        help="torch.compile mode; reduce-overhead captures the compiled step in CUDA graphs (CUDA only; static "
        "step shapes)",
    )
    step_shapes: StepShapes = setting(
        "static",
        help="static: every step encodes batch_size x (max_seq_len + 1) items, padding slots included (as the IISAN "
        "code does), so every step does the same work; bucketed: the batch's items rounded up to a multiple of 64; "
        "dynamic: only the batch's items (work varies with the batch)",
    )
    frozen_weights: FrozenWeights = setting(
        "compute",
        help="towers that nothing trains (uncached side networks) are stored in: compute, the precision autocast "
        "computes in (bf16/fp16; autocast would cast their weights every step), or fp32",
    )
    distributed: DistributedStrategy = setting(
        "none",
        help="train one cell on several ranks started by torchrun: ddp (DistributedDataParallel) or fsdp (FSDP2 "
        "fully_shard: weights, gradients and optimizer state sharded); batch_size stays the global batch",
    )
    nproc_per_node: int = setting(
        1, minimum=1, help="ranks of a distributed cell (one GPU each on CUDA; processes on a CPU)"
    )
    dist_backend: DistributedBackend = setting(
        "auto", help="process-group backend of a distributed cell: auto (nccl on CUDA, gloo on a CPU), gloo or nccl"
    )
    dist_timeout_s: float = setting(
        300.0,
        minimum=1,
        help="a collective that waits longer than this ends the distributed cell (a rank that hangs without dying)",
    )

    @property
    def ranks(self) -> int:
        """The processes one cell runs on: nproc_per_node for a distributed cell, else one."""
        return self.nproc_per_node if self.distributed != "none" else 1


# A train setting that chooses a registered extension -> the setting holding options by extension name. A cell keeps
# its own choice's options only (suite/matrix.py); validation checks each by the extension's options
# (plan/entry_checks.py). The registry a choice's names come from is its field's `choices`.
CHOSEN_OPTIONS = {"sequence_model": "sequence_options", "objective": "objective_options"}


@dataclass(frozen=True)
class EvalConfig:
    enabled: bool = setting(True)
    every: int = setting(1, minimum=1, help="validate every this many epochs (and after the last)")
    patience: int = setting(
        0, minimum=0, help="stop after this many validations without a better NDCG@10 (0: never stop early)"
    )
    baselines: bool = setting(True, help="also rank with popularity and random scores")
    ks: tuple[int, ...] = setting((5, 10, 20), minimum=1, help="cut-offs of HR@K and NDCG@K (stored: 5, 10, 20)")
    batch_size: int = setting(256, minimum=1, help="users scored at once")
    item_batch_size: int = setting(256, minimum=1, help="items encoded at once")
    tta_fraction: float = setting(
        0.95,
        minimum=0.01,
        maximum=1.0,
        help="time to accuracy: training time until validation NDCG@10 first reaches this fraction of its best",
    )


SlurmCluster = Literal["slurm", "local"]


@dataclass(frozen=True)
class SlurmConfig:
    """`run.slurm:`: the job array `--launcher slurm` submits (each CLI `--slurm-*` option overrides one key)."""

    partition: str | None = setting(None, help="SLURM partition")
    time_min: int | None = setting(None, minimum=1, help="time limit per task in minutes (default: cell timeout + 20%)")
    gpus_per_task: int = setting(1, minimum=0, help="GPUs per array task (one cell per task)")
    cpus_per_task: int = setting(8, minimum=1, help="CPU cores per task (DataLoader workers, the cell's process)")
    mem_gb: float | None = setting(None, minimum=1, help="memory per task in GB (default: the partition's)")
    account: str | None = setting(None, help="SLURM account to charge")
    qos: str | None = setting(None, help="SLURM quality of service")
    array_parallelism: int = setting(64, minimum=1, help="tasks of the array that may run at once")
    cluster: SlurmCluster = setting("slurm", help="slurm, or local: submitit's local executor (no SLURM; tests)")


@dataclass(frozen=True)
class RunConfig:
    timeout_s: float = setting(3600.0, minimum=1, help="a cell running longer is killed and recorded as timeout")
    launcher: str = setting(
        "local", help="local (one cell at a time), pool (one per GPU), slurm, or a plug-in's", choices="launchers"
    )
    gpus: str | None = setting(None, help="pool launcher: all, NVML indices like 0,1,3, or fake:N")
    slurm: SlurmConfig = setting(factory=SlurmConfig)
    estimate_calibration: str | None = setting(
        None, help="`mmbench estimate calibrate`'s file the predictions use (relative to the suite's folder)"
    )


@dataclass(frozen=True)
class SuiteConfig:
    name: str = setting()
    datasets: tuple[DatasetConfig, ...] = setting()
    towers: tuple[TowerSetConfig, ...] = setting()
    methods: tuple[MethodConfig, ...] = setting()
    description: str = setting("")
    train: TrainConfig = setting(factory=TrainConfig)
    eval: EvalConfig = setting(factory=EvalConfig)
    matrix: dict[str, Any] = setting(help="dotted key -> list of values, e.g. train.batch_size: [16, 32]", factory=dict)
    seeds: tuple[int, ...] = setting((0,))
    repeats: int = setting(1, minimum=1, help="run every cell this many times, each in a fresh process (spread)")
    run: RunConfig = setting(factory=RunConfig)
    allow_download: bool = setting(False)
    source: str = setting("", help="the suite file (set by the loader)")


@dataclass(frozen=True)
class CellConfig:
    """One cell: everything its subprocess needs. `to_dict()` is its JSON and the input of its config hash."""

    suite: str
    cell_id: str
    dataset: DatasetConfig
    towers: TowerSetConfig
    method: MethodConfig
    train: TrainConfig
    eval: EvalConfig
    seed: int
    repeat: int
    timeout_s: float
    allow_download: bool

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any], options_of: OptionsOf) -> CellConfig:
        """The cell of `to_dict()`'s data; `options_of` gives the method's options type (`catalog.method_options`)."""
        config: CellConfig = build(cls, data, options_of)
        return config

    def replace(self, **changes: Any) -> CellConfig:
        return dataclasses.replace(self, **changes)


def flattened_field(cls: type) -> dataclasses.Field[Any] | None:
    """The field whose entries a mapping of `cls` holds at its own level (see `setting(flattened=True)`)."""
    return next((item for item in dataclasses.fields(cls) if item.metadata.get("flattened")), None)


def to_plain(value: Any) -> Any:
    """Dataclasses to dicts (a flattened field's entries at the dataclass's level), tuples to lists: the JSON shape."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {}
        for item in dataclasses.fields(value):
            if item.metadata.get("flattened"):
                plain.update({key: to_plain(entry) for key, entry in getattr(value, item.name).items()})
            else:
                plain[item.name] = to_plain(getattr(value, item.name))
        return plain
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value


def unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        if len(members) == 1 and len(typing.get_args(hint)) == 2:
            return members[0], True
    return hint, False


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type, data: dict[str, Any], options_of: OptionsOf | None = None) -> Any:
    """A dataclass from validated plain data (defaults for what is missing), recursively. A method's options are
    built as the options type `options_of` names for it (needed wherever `data` holds a method)."""
    if cls is MethodConfig:
        options = data.get("options") or {}
        if not dataclasses.is_dataclass(options):
            if options_of is None:
                raise TypeError("building a method's configuration needs options_of (benchmark.catalog.method_options)")
            options = build(options_of(data["name"]), options)
        data = {**data, "options": options}
    values = {}
    field_hints = hints(cls)
    for item in dataclasses.fields(cls):
        if item.metadata.get("flattened"):
            entry_hint = typing.get_args(field_hints[item.name])[1]
            names = {other.name for other in dataclasses.fields(cls)}
            entries = {key: entry for key, entry in data.items() if key not in names and entry is not None}
            values[item.name] = {key: typed_value(entry_hint, entry, options_of) for key, entry in entries.items()}
        elif item.name in data:
            values[item.name] = typed_value(field_hints[item.name], data[item.name], options_of)
    return cls(**values)


def typed_value(hint: Any, value: Any, options_of: OptionsOf | None = None) -> Any:
    """A validated plain value as the field's type: nested dataclasses built, lists to tuples, ints to floats."""
    inner, _ = unwrap_optional(hint)
    if value is None or dataclasses.is_dataclass(value):
        return value
    if isinstance(inner, type) and dataclasses.is_dataclass(inner):
        return build(inner, value, options_of)
    if typing.get_origin(inner) is tuple:
        item_hint = typing.get_args(inner)[0]
        return tuple(typed_value(item_hint, item, options_of) for item in value)
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
