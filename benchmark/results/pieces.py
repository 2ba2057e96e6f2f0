"""The pieces of a result row. Each measuring component returns one small frozen piece; the row is assembled
once, at the end of the cell, from the pieces it has (a failed cell assembles what it measured before failing).
Field names are column names; figures that combine two pieces (energy per epoch, amortised epoch) are derived
only at assembly, so no component reads another's output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark.units import GIB


@dataclass(frozen=True)
class Piece:
    def columns(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeviceFacts(Piece):
    nvml_device_match: str | None
    nvml_baseline_gib: float | None


@dataclass(frozen=True)
class DataFacts(Piece):
    n_items: int
    n_train_sequences: int
    dropped_sequences: int


@dataclass(frozen=True)
class CacheFacts(Piece):
    cache_origin: str  # built | reused | reused_other_hardware
    cache_built_on: str
    cache_build_s: float
    cache_bytes: int


@dataclass(frozen=True)
class ModelFacts(Piece):
    trainable_params: int
    total_params: int
    trainable_pct: float
    setup_s: float
    gradient_checkpointing: str | None  # non-reentrant | reentrant | None (the towers keep their activations)


@dataclass(frozen=True)
class Timing(Piece):
    steps_per_epoch: int
    num_workers: int
    step_ms: list[float]
    warmup_ms: list[float]
    measured_steps: int
    step_ms_median: float | None
    step_ms_p10: float | None
    step_ms_p90: float | None
    epoch_s_samples: list[float]
    epochs_run: int
    epochs_trained: float | None
    data_wait_ms: list[float]
    train_loss: list[float]
    final_loss: float | None
    stopped_early: bool
    samples_per_s: float | None
    epoch_s: float | None
    epoch_kind: str | None
    data_wait_s_per_epoch: float | None
    data_share: float | None
    items_per_s: float | None  # items encoded per second of measured steps (every non-pad position, or each once)
    tokens_per_s: float | None  # real (non-padding) text tokens of those items per second; None without text
    step_items_median: float | None  # items encoded by the median measured step


@dataclass(frozen=True)
class TrainingMemory(Piece):
    torch_peak_alloc_gib: float | None
    torch_peak_reserved_gib: float | None
    cpu_peak_rss_gib: float | None
    nvml_peak_process_gib: float | None
    nvml_peak_device_gib: float | None
    nvml_samples: int | None
    nvml_hz: float | None
    peak_mem_gib: float | None
    peak_mem_source: str


@dataclass(frozen=True)
class StaticMemory(Piece):
    """Bytes held for the whole of training, counted from the tensors themselves after the first step."""

    weights_trainable_bytes: int
    weights_frozen_bytes: int
    gradient_bytes: int  # the .grad tensors the backward pass left
    optimizer_state_bytes: int  # every tensor in the optimizer's state (AdamW: exp_avg, exp_avg_sq, step)


@dataclass(frozen=True)
class StepCost(Piece):
    """One training step counted (forward + backward): FLOPs by component and the activations kept for backward."""

    flops_per_step: int
    flops_tower: int  # the pretrained towers, with any PEFT module inside them (LoRA, adapters, BitFit shifts)
    flops_side: int  # the rest of the item encoder: side networks, fusion, projection heads
    flops_user: int  # the SASRec user encoder
    flops_other: int  # scoring and loss (in-batch logits, masking, cross-entropy)
    flops_step_items: int  # items the counted step encoded (a step's work grows with them)
    activation_saved_bytes: int  # tensors autograd saved for backward, parameters excluded


@dataclass(frozen=True)
class StepOps(Piece):
    """What one training step asks of the device, counted operator by operator on the last warm-up step (the timed
    step's code, untimed): see benchmark/profile/op_census.py."""

    step_kernels: int  # operators that launch device work (forward, backward, optimizer)
    step_casts: int  # of which: dtype conversions
    step_syncs: int  # operators that make the host wait for the device (0: the host can queue the whole step)
    step_sync_ops: str  # which, e.g. "nonzero x2" ('' when none)


@dataclass(frozen=True)
class RankFigures(Piece):
    """A distributed cell's ranks, each rank's figures (in rank order), and the collective share of a step."""

    distributed: str  # the strategy the ranks ran (a side network asked for fsdp runs ddp)
    dist_backend: str
    rank_devices: str  # JSON list
    rank_peak_mem_gib: list[float | None]
    rank_torch_peak_alloc_gib: list[float | None]
    rank_step_ms_median: list[float | None]
    comm_share: float | None  # of a profiled step's device time, in collectives (None: the profiler cannot see it)


@dataclass(frozen=True)
class DevicePeak(Piece):
    """The device's dense peak for the cell's precision (None on a device the peak table does not know)."""

    peak_tflops: float | None
    peak_tflops_source: str | None


@dataclass(frozen=True)
class Compilation(Piece):
    compiled: bool  # torch.compile was asked for and ran (False after a fallback)
    compile_backend: str | None
    compile_mode: str | None
    cuda_graphs: bool  # the compiled step replays CUDA graphs (reduce-overhead, max-autotune, the cudagraphs backend)
    compile_s: float | None  # time of the steps that compiled, beyond a median step
    compile_steps: int | None  # steps during which a graph was compiled (left out of step_ms)


@dataclass(frozen=True)
class LearningCurve(Piece):
    """Validation NDCG@10 after each validation and the training time (evaluation excluded) it took to get there."""

    valid_ndcg10_curve: list[float]
    valid_train_s_curve: list[float]
    tta_fraction: float
    tta_s: float | None  # training time at which validation NDCG@10 first reached tta_fraction of its best


def time_to_accuracy(scores: list[float], train_s: list[float], fraction: float) -> float | None:
    """The training time of the first validation whose score reaches `fraction` of the best (None: no score > 0)."""
    best = max(scores, default=0.0)
    if best <= 0:
        return None
    return next(seconds for score, seconds in zip(scores, train_s, strict=True) if score >= fraction * best)


@dataclass(frozen=True)
class Energy(Piece):
    energy_j_measured: float | None  # over the measured steps; per epoch is derived with the timing


@dataclass(frozen=True)
class ContentionFigures(Piece):
    contended: bool
    contention: str | None
    other_gpu_processes: int | None
    other_busy_cores: float | None
    load_avg_1m: float | None


@dataclass(frozen=True)
class EvaluationMemory(Piece):
    eval_peak_alloc_gib: float | None
    eval_peak_reserved_gib: float | None
    eval_peak_rss_gib: float | None


@dataclass(frozen=True)
class Accuracy(Piece):
    metrics: dict[str, float]  # valid_/test_/pop_test_/random_test_ hr@K, ndcg@K, mrr
    eval_s: float
    best_epoch: int | None

    def columns(self) -> dict[str, Any]:
        return {**self.metrics, "eval_s": self.eval_s, "best_epoch": self.best_epoch}


@dataclass(frozen=True)
class Amortization(Piece):
    amortized_over_epochs: float
    epoch_amortized_s: float


def memory_breakdown(static: StaticMemory, memory: TrainingMemory) -> dict[str, int | None]:
    """The dynamic parts of the memory peak (CUDA only; None elsewhere): activations and temporaries at the peak
    (peak allocated minus what training holds throughout), allocator slack (reserved minus allocated) and the CUDA
    context with everything else outside torch's allocator (NVML process minus torch reserved)."""
    held = static.weights_trainable_bytes + static.weights_frozen_bytes + static.gradient_bytes
    held += static.optimizer_state_bytes
    alloc, reserved, process = (
        None if value is None else int(value * GIB)
        for value in (memory.torch_peak_alloc_gib, memory.torch_peak_reserved_gib, memory.nvml_peak_process_gib)
    )
    return {
        "activation_peak_bytes": max(alloc - held, 0) if alloc is not None else None,
        "allocator_slack_bytes": reserved - alloc if reserved is not None and alloc is not None else None,
        "cuda_context_bytes": max(process - reserved, 0) if process is not None and reserved is not None else None,
    }


def achieved_tflops(cost: StepCost, timing: Timing) -> float | None:
    """FLOPs of the median step over its time. The counted step's FLOPs are scaled to the median step's items:
    steps encode every non-pad position, so their work follows the batch's sequence lengths."""
    if not timing.step_ms_median or not timing.step_items_median or not cost.flops_step_items:
        return None
    flops = cost.flops_per_step * timing.step_items_median / cost.flops_step_items
    return flops / (timing.step_ms_median / 1000.0) / 1e12


FOREIGN_CACHE_WARNING = "hidden-state cache built on other hardware: its build time is not amortised into this row"


def amortize(timing: Timing, cache: CacheFacts | None) -> Amortization | None:
    """Epoch time plus the cache build spread over the epochs trained (at least one: a cut run still paid a whole
    build). A cache built on other hardware did not cost its build time here: no amortised figure."""
    if timing.epoch_s is None or (cache is not None and cache.cache_origin == "reused_other_hardware"):
        return None
    epochs = max(timing.epochs_trained or 0.0, 1.0)
    return Amortization(epochs, timing.epoch_s + (cache.cache_build_s if cache else 0.0) / epochs)


@dataclass
class CellRecord:
    """What a cell has measured so far; `to_row()` assembles the row's measured columns."""

    warnings: list[str] = field(default_factory=list)
    pieces: dict[type, Piece] = field(default_factory=dict)

    def add(self, *pieces: Piece | None) -> None:
        for piece in pieces:
            if piece is not None:
                self.pieces[type(piece)] = piece

    def get(self, kind: type[Any]) -> Any:
        return self.pieces.get(kind)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"warnings": list(self.warnings)}
        for piece in self.pieces.values():
            row.update(piece.columns())
        timing, energy, cache = self.get(Timing), self.get(Energy), self.get(CacheFacts)
        static, memory, cost = self.get(StaticMemory), self.get(TrainingMemory), self.get(StepCost)
        if static is not None and memory is not None:
            row.update(memory_breakdown(static, memory))
        if cost is not None and timing is not None:
            row["tflops_per_s"] = achieved_tflops(cost, timing)
            peak = self.get(DevicePeak)
            if row["tflops_per_s"] is not None and peak is not None and peak.peak_tflops:
                row["mfu"] = row["tflops_per_s"] / peak.peak_tflops
        curve = self.get(LearningCurve)
        if curve is not None and curve.tta_s is not None:
            foreign = cache is not None and cache.cache_origin == "reused_other_hardware"
            if not foreign:  # a cache built elsewhere cost no time here, so its share of the total is unknown
                row["tta_incl_cache_s"] = curve.tta_s + (cache.cache_build_s if cache is not None else 0.0)
        if timing is not None:
            amortization = amortize(timing, cache)
            if amortization is not None:
                row.update(amortization.columns())
            elif cache is not None and cache.cache_origin == "reused_other_hardware":
                row["warnings"].append(FOREIGN_CACHE_WARNING)
            if energy is not None and energy.energy_j_measured is not None and timing.step_ms:
                row["energy_j_per_epoch"] = energy.energy_j_measured / len(timing.step_ms) * timing.steps_per_epoch
        return row
