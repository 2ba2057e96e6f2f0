"""A cell's training step, run without memory: the model built on the meta device (no weights read or made), then
given fake storage (shapes and dtypes only), and two steps of the trainer's own sequence (forward under autocast,
gradients set to None, backward, fused AdamW) on the largest batch the cell will see, followed by the tracker.

Two steps because the second is the steady state: the optimizer's state exists, and the previous step's gradients
are alive through the forward (the trainer sets them to None only after it). The peak is the larger of the two;
operations are counted on the second. The fake tensors claim the CPU as their device: autocast then lowers the
same operations to bf16/fp16 as it does on a GPU, and attention runs the fused kernel whose saved tensors (the
output and its log-sum-exp) are those of the GPU's flash and memory-efficient kernels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from benchmark.data.collate import TrainBatch
from benchmark.estimate.cell_data import StepData, step_data
from benchmark.estimate.rank_share import rank_share, spread_over_ranks
from benchmark.estimate.tracker import CUDA_BLOCK_BYTES, OperationCost, StepTracker, TrackedStep
from benchmark.modalities.registry import modality_names
from benchmark.models.towers import Tower, build_tower, count_parameters
from benchmark.suite.config import CellConfig, TrainConfig
from benchmark.train.batches import input_preparation
from benchmark.train.cell_plan import method_of
from benchmark.train.loop import build_recommender
from benchmark.train.model_setup import store_frozen_towers
from benchmark.train.precision import DTYPES, autocast_factory
from benchmark.train.recommender import Recommender
from benchmark.train.trainer import training_optimizer


@dataclass(frozen=True)
class SimulatedStep:
    peak_bytes: int
    at_peak: dict[str, int]  # the parts as they were at the peak
    weights_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    input_bytes: int  # the batches on the device: this step's and the next one's
    saved_bytes: int  # the most autograd held for backward at once
    activation_bytes: int  # the most the forward pass held at once beyond weights and inputs
    operations: tuple[OperationCost, ...]  # of one steady-state step
    trainable_params: int
    total_params: int
    data: StepData
    notes: tuple[str, ...] = ()


def _fake_batch(batch: TrainBatch) -> TrainBatch:
    """The batch as fake tensors of the same shapes (created under the tracker: they are counted as inputs)."""
    return batch.apply(lambda tensor: torch.empty(tensor.shape, dtype=tensor.dtype))


def simulate_step(config: CellConfig, device_type: str) -> SimulatedStep:
    """Simulate `config`'s training step as it would run on a `device_type` ("cpu" or "cuda") device."""
    train = config.train
    method = method_of(config)
    tower_configs = config.towers.present(modality_names())
    with torch.device("meta"):
        towers = {
            modality: build_tower(modality, tower, config.seed, load_weights=False)
            for modality, tower in tower_configs.items()
        }
    base_precision = config.method.base_precision
    quantized = dense_stand_ins(towers, DTYPES[train.precision]) if base_precision is not None else []
    data = step_data(config, towers, tower_configs, method)
    with torch.device("meta"):
        item_encoder = method.build_item_encoder(dict(towers), train.embed_dim)
        log_probability = torch.zeros(data.n_items + 1) if train.logq_correction else None
        model = build_recommender(item_encoder, train, log_probability)
        # On the meta device, before storage: a fake parameter cannot be swapped for its cast copy.
        store_frozen_towers(model, train.precision, train.frozen_weights)
    trainable, total = count_parameters(model)
    if method.uses_cache:  # the towers stay off the device; they count in the total as the cell counts them
        total += sum(count_parameters(tower)[1] for tower in towers.values())
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    tracker = StepTracker(CUDA_BLOCK_BYTES if device_type == "cuda" else 1)
    with fake:
        model.to_empty(device="cpu")
        _run_steps(model, rank_share(data.largest_batch, train.ranks), train, tracker)
    step = tracker.step
    notes: tuple[str, ...] = ()
    spread = spread_over_ranks(step, model, train, method.distributed_strategy(train.distributed))
    if spread is not None:
        notes += (spread,)
    if base_precision is not None:
        _pack(step, quantized, base_precision, DTYPES[train.precision].itemsize)
        notes += (
            f"base_precision {base_precision}: the step simulated with dense frozen stand-ins for bitsandbytes' "
            "layers, their weights counted at their packed size",
        )
    return SimulatedStep(
        peak_bytes=step.peak_bytes,
        at_peak=step.at_peak,
        weights_bytes=step.largest["weights"],
        gradient_bytes=step.largest["gradients"],
        optimizer_bytes=step.largest["optimizer"],
        input_bytes=step.largest["inputs"],
        saved_bytes=step.largest["saved"],
        activation_bytes=step.largest["activations"],
        operations=tuple(step.operations),
        trainable_params=trainable,
        total_params=total,
        data=data,
        notes=notes,
    )


def dense_stand_ins(towers: dict[str, Tower], compute_dtype: torch.dtype) -> list[tuple[int, int]]:
    """A quantized base's linear layers (every `nn.Linear` of the towers, as `quantize_linears` picks them) as
    frozen weights in the compute dtype, which bitsandbytes dequantizes them to for each matmul; (elements, output
    features) of each, for their packed size."""
    found = []
    for tower in towers.values():
        for module in tower.model.modules():
            if type(module) is nn.Linear:
                module.weight.requires_grad_(False)
                module.weight.data = module.weight.data.to(compute_dtype)
                found.append((module.weight.numel(), module.out_features))
    return found


def packed_bytes(elements: int, outputs: int, base_precision: str) -> int:
    """A bitsandbytes weight's bytes: NF4 with double quantization packs two values a byte, one 8-bit scale per
    64 values, one fp32 scale per 256 of those, and two code books; int8 one byte a value and an fp32 scale a row."""
    if base_precision == "nf4":
        blocks = -(-elements // 64)
        return -(-elements // 2) + blocks + 4 * -(-blocks // 256) + 4 * (16 + 256 + 1)
    return elements + 4 * outputs


def _pack(step: TrackedStep, quantized: list[tuple[int, int]], base_precision: str, compute_bytes: int) -> None:
    """The simulated step's weights at their packed size, and the one layer's weight bitsandbytes dequantizes for
    each matmul as a transient."""
    dense = sum(elements * compute_bytes for elements, _ in quantized)
    change = sum(packed_bytes(elements, outputs, base_precision) for elements, outputs in quantized) - dense
    dequantized = max((elements * compute_bytes for elements, _ in quantized), default=0)
    step.peak_bytes += change + dequantized
    step.at_peak["weights"] = step.at_peak.get("weights", 0) + change
    step.at_peak["transient"] = step.at_peak.get("transient", 0) + dequantized
    step.largest["weights"] += change


def _run_steps(model: Recommender, batch: TrainBatch, train: TrainConfig, tracker: StepTracker) -> None:
    model.train()
    for tensor in [*model.parameters(), *model.buffers()]:
        tracker.add(tensor, "weights")
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    for parameter in trainable:
        parameter.register_post_accumulate_grad_hook(  # type: ignore[no-untyped-call]
            lambda p: tracker.add(p.grad, "gradients")
        )
    cpu = torch.device("cpu")  # what the fake tensors claim: autocast and the optimizer as on any device
    optimizer = training_optimizer(model, train, cpu) if trainable else None
    prepare = input_preparation(model, DTYPES[train.precision])
    autocast = autocast_factory(train.precision, cpu)
    with tracker, torch.autograd.graph.saved_tensors_hooks(tracker.pack_saved, tracker.unpack_saved):
        tracker.new_part = "inputs"
        batches = [dataclasses.replace(fake, features=prepare(fake.features)) for fake in map(_fake_batch, [batch] * 2)]
        for index, ready in enumerate(batches):
            tracker.new_part, tracker.counting, tracker.in_forward = "transient", index == 1, True
            with autocast():
                loss = model.training_loss(ready.sequences, ready.features, ready.encoded_ids, ready.position_index)
            tracker.in_forward = False
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            del loss
            if optimizer is not None:
                tracker.new_part = "optimizer"
                optimizer.step()
                for state in optimizer.state.values():
                    for value in state.values():
                        if isinstance(value, torch.Tensor):
                            tracker.add(value, "optimizer")
        tracker.counting = False
