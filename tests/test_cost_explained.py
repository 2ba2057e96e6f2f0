"""Where a cell's cost goes: FLOPs per step (split by component), activations saved for backward, the memory
breakdown's dynamic parts, achieved TFLOP/s and MFU, throughput, time to accuracy, torch.compile."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark.methods.registry import get_method_class
from benchmark.models.towers import build_tower
from benchmark.plan.loader import load_suite
from benchmark.profile.peaks import dense_peak_tflops, find_peak
from benchmark.profile.step_cost import count_step_cost
from benchmark.results.pieces import (
    CacheFacts,
    CellRecord,
    DevicePeak,
    LearningCurve,
    StaticMemory,
    StepCost,
    Timing,
    TrainingMemory,
    time_to_accuracy,
)
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import expand_cells
from benchmark.train import compile as compile_module
from benchmark.train.hidden_state_build import ensure_cell_caches
from benchmark.train.loop import run_cell
from benchmark.train.recommender import Recommender
from benchmark.units import GIB


class ToyTower(nn.Module):
    def __init__(self, width_in: int, width: int):
        super().__init__()
        self.first, self.second = nn.Linear(width_in, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


class ToyItemEncoder(nn.Module):
    def __init__(self, tower: nn.Module, width: int, embed: int):
        super().__init__()
        self.towers = nn.ModuleDict({"text": tower})
        self.head = nn.Linear(width, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.towers["text"](x))


class ToyRecommender(nn.Module):
    """A Linear stack shaped like the recommender: towers inside an item encoder, then a user encoder."""

    def __init__(self, a: int, b: int, c: int, d: int):
        super().__init__()
        self.item_encoder = ToyItemEncoder(ToyTower(a, b), b, c)
        self.user_encoder = nn.Linear(c, d)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.user_encoder(self.item_encoder(x)).square().sum()


def test_flops_of_a_linear_stack_equal_the_formula_and_the_split_sums_to_the_total():
    n, a, b, c, d = 32, 24, 40, 16, 8
    model = ToyRecommender(a, b, c, d)
    x = torch.randn(n, a)  # the input needs no gradient: the first layer computes no input gradient
    cost = count_step_cost(model, lambda: model.loss(x), items=n)
    # A Linear [n, i] -> [n, o]: 2·n·i·o forward; backward 2·n·i·o for the weight gradient, and 2·n·i·o more for the
    # input gradient when its input needs one (every layer but the first).
    assert cost.flops_tower == (2 * n * a * b) * 2 + (2 * n * b * b) * 3
    assert cost.flops_side == (2 * n * b * c) * 3
    assert cost.flops_user == (2 * n * c * d) * 3
    assert cost.flops_other == 0  # square and sum: no FLOP formula counts element-wise work
    parts = cost.flops_tower + cost.flops_side + cost.flops_user + cost.flops_other
    assert parts == cost.flops_per_step
    counter = FlopCounterMode(display=False)
    with counter:
        model.loss(x).backward()
    assert cost.flops_per_step == counter.get_total_flops()  # torch's own count of the same step


def test_counting_leaves_no_gradient_and_no_trace_in_the_random_stream():
    model = ToyRecommender(8, 8, 8, 8)
    x = torch.randn(4, 8)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    count_step_cost(model, lambda: F.dropout(model.item_encoder(x), 0.5).sum(), items=4)
    assert torch.equal(torch.rand(3), expected)
    assert all(p.grad is None for p in model.parameters())


def test_cpu_attention_kernel_is_counted_like_the_cuda_ones():
    b, h, s, e = 2, 3, 10, 16
    q, k, v = (torch.randn(b, h, s, e, requires_grad=True) for _ in range(3))

    class Attention(nn.Module):
        def forward(self) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v).sum()

    cost = count_step_cost(Attention(), Attention(), items=1)
    # torch's formulas, as for the CUDA kernels: two batched matmuls forward (scores, weighted values); five backward
    # (the scores again, then the gradients of values, probabilities, queries and keys), 2·b·h·s·s·e each.
    assert cost.flops_per_step == 7 * 2 * b * h * s * s * e


def _model(method: str, options: dict | None = None) -> tuple[Recommender, object]:
    torch.manual_seed(0)
    towers = {
        "text": build_tower("text", {"preset": "bert-tiny", "weights": "random", "max_tokens": 8}),
        "image": build_tower("image", {"preset": "vit-micro", "weights": "random", "image_size": 16}),
    }
    method_object = get_method_class(method)(options or {})
    return Recommender(method_object.build_item_encoder(towers, 32), 32, 4, 1, 2, 0.0), towers


def _batch(n_items: int) -> dict:
    torch.manual_seed(1)
    features = {
        "text_ids": torch.randint(1, 100, (n_items, 8)),
        "text_mask": torch.ones(n_items, 8, dtype=torch.long),
        "pixels": torch.randint(0, 256, (n_items, 3, 16, 16), dtype=torch.uint8),
    }
    sequences = torch.tensor([[0, 1, 2, 3, 4], [0, 5, 6, 7, 8]])
    position = torch.tensor([[-1, 0, 1, 2, 3], [-1, 4, 5, 6, 7]])
    return {"features": features, "sequences": sequences, "position": position, "ids": torch.arange(1, 9)}


def _cost(model: Recommender, batch: dict, features: dict | None = None) -> StepCost:
    return count_step_cost(
        model,
        lambda: model.training_loss(batch["sequences"], features or batch["features"], batch["ids"], batch["position"]),
        items=8,
    )


def test_the_split_tells_the_methods_apart_on_real_towers():
    batch = _batch(8)
    costs = {method: _cost(_model(method)[0], batch) for method in ("fft", "lora")}
    iisan, towers = _model("iisan", {"layer_stride": 1})
    costs["iisan"] = _cost(iisan, batch)
    cached = _model("iisan_cached", {"layer_stride": 1})[0]
    with torch.no_grad():  # what the cache holds: the frozen towers' kept states
        states = iisan.item_encoder.modality_states(batch["features"])
    costs["iisan_cached"] = _cost(cached, batch, {f"{m}_states": s for m, s in states.items()})
    for cost in costs.values():
        parts = cost.flops_tower + cost.flops_side + cost.flops_user + cost.flops_other
        assert parts == cost.flops_per_step and cost.flops_user > 0
    fft, lora, side, cached_cost = costs["fft"], costs["lora"], costs["iisan"], costs["iisan_cached"]
    # FFT runs the towers forward and backward (~3x forward); IISAN's frozen towers run forward only, and not at
    # all once cached; LoRA backpropagates through the frozen weights (input gradients) but not into them.
    assert 2.5 * side.flops_tower < fft.flops_tower <= 3 * side.flops_tower
    assert side.flops_tower < lora.flops_tower < fft.flops_tower
    assert cached_cost.flops_tower == 0 and cached_cost.flops_side == side.flops_side
    # IISAN's claim, counted: no activation of a frozen tower is kept for backward, so the uncached and cached
    # side networks keep exactly the same, and far less than LoRA, which backpropagates through its towers.
    assert side.activation_saved_bytes == cached_cost.activation_saved_bytes
    assert side.activation_saved_bytes * 5 < lora.activation_saved_bytes < fft.activation_saved_bytes


def _timing(**changes: object) -> Timing:
    timing = Timing(
        steps_per_epoch=10, num_workers=0, step_ms=[50.0] * 5, warmup_ms=[], measured_steps=5, step_ms_median=50.0,
        step_ms_p10=50.0, step_ms_p90=50.0, epoch_s_samples=[0.5], epochs_run=1, epochs_trained=1.0, data_wait_ms=[],
        train_loss=[], final_loss=None, stopped_early=False, samples_per_s=None, epoch_s=0.5, epoch_kind="measured",
        data_wait_s_per_epoch=None, data_share=None, items_per_s=2000.0, tokens_per_s=None, step_items_median=100.0,
    )  # fmt: skip
    return dataclasses.replace(timing, **changes)


def test_tflops_scale_the_counted_step_to_the_median_step_and_mfu_needs_a_known_peak():
    cost = StepCost(4_000_000_000_000, 0, 0, 0, 0, flops_step_items=80, activation_saved_bytes=0)
    record = CellRecord()
    record.add(cost, _timing())
    row = record.to_row()
    # 4 TFLOP for 80 items -> 5 TFLOP for the median step's 100 items, in 50 ms: 100 TFLOP/s.
    assert row["tflops_per_s"] == pytest.approx(100.0) and "mfu" not in row
    record.add(DevicePeak(400.0, "test"))
    assert record.to_row()["mfu"] == pytest.approx(0.25)
    record.add(DevicePeak(None, None))  # an unknown GPU: no MFU rather than a guess
    assert "mfu" not in record.to_row()


def test_memory_breakdown_takes_the_static_parts_from_the_allocator_peak():
    static = StaticMemory(100 * 2**20, 300 * 2**20, 100 * 2**20, 200 * 2**20)
    memory = TrainingMemory(
        torch_peak_alloc_gib=1.0, torch_peak_reserved_gib=1.25, cpu_peak_rss_gib=3.0, nvml_peak_process_gib=1.75,
        nvml_peak_device_gib=2.0, nvml_samples=10, nvml_hz=100.0, peak_mem_gib=1.75, peak_mem_source="nvml_process",
    )  # fmt: skip
    record = CellRecord()
    record.add(static, memory)
    row = record.to_row()
    assert row["activation_peak_bytes"] == GIB - 700 * 2**20
    assert row["allocator_slack_bytes"] == GIB // 4 and row["cuda_context_bytes"] == GIB // 2
    parts = row["activation_peak_bytes"] + row["allocator_slack_bytes"] + row["cuda_context_bytes"] + 700 * 2**20
    assert parts == int(1.75 * GIB)  # the stack adds up to the NVML process peak
    on_cpu = CellRecord()
    on_cpu.add(static, dataclasses.replace(memory, torch_peak_alloc_gib=None, torch_peak_reserved_gib=None,
                                           nvml_peak_process_gib=None))  # fmt: skip
    cpu_row = on_cpu.to_row()
    assert cpu_row["activation_peak_bytes"] is None and cpu_row["cuda_context_bytes"] is None


def test_time_to_accuracy_is_the_first_validation_within_the_fraction_of_the_best():
    assert time_to_accuracy([0.10, 0.19, 0.20, 0.18], [1.0, 2.0, 3.0, 4.0], 0.95) == 2.0
    assert time_to_accuracy([0.10, 0.19, 0.20], [1.0, 2.0, 3.0], 1.0) == 3.0
    assert time_to_accuracy([0.0, 0.0], [1.0, 2.0], 0.95) is None  # never learned anything: no time to accuracy
    curve = LearningCurve([0.1, 0.2], [1.5, 3.0], 0.95, 3.0)
    record = CellRecord()
    record.add(curve, CacheFacts("built", "[]", 2.0, 1))
    assert record.to_row()["tta_incl_cache_s"] == 5.0  # the cache build is part of what reaching it cost
    record.add(CacheFacts("reused_other_hardware", "[]", 2.0, 1))
    assert "tta_incl_cache_s" not in record.to_row()


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
    ],
)
def test_known_gpus_find_their_peak(name, label):
    assert find_peak(name).label == label


def test_unknown_gpus_get_no_peak_and_precision_picks_the_figure():
    assert find_peak("NVIDIA A10") is None and find_peak("Tesla V100-SXM2-16GB") is None and find_peak(None) is None
    assert dense_peak_tflops("NVIDIA H100 80GB HBM3", "bf16", tf32=False)[0] == 989.5
    assert dense_peak_tflops("NVIDIA H100 80GB HBM3", "fp32", tf32=True)[0] == 494.5
    value, source = dense_peak_tflops("NVIDIA H100 80GB HBM3", "fp32", tf32=False)
    assert value == 67.0 and "datasheet" in source


def _config(write_suite, methods: str, extra: str = ""):
    text = write_suite(methods=methods, max_steps=6).read_text().replace("  device: cpu\n", f"  device: cpu\n{extra}")
    path = write_suite(methods=methods, text=text)
    config = expand_cells(load_suite(path))[0].config
    ensure_cell_caches(config, lambda event: None)  # what the launcher does before a cached cell
    return config


def test_a_cell_row_explains_its_cost(write_suite):
    row = empty_row()
    run_cell(_config(write_suite, "[lora]"), row, lambda message: None)
    assert row["flops_per_step"] > 0 and row["flops_tower"] > row["flops_side"] > 0
    assert row["flops_tower"] + row["flops_side"] + row["flops_user"] + row["flops_other"] == row["flops_per_step"]
    assert row["tflops_per_s"] > 0 and row["mfu"] is None  # a CPU has no peak in the table
    assert row["activation_saved_bytes"] > 0 and row["activation_peak_bytes"] is None
    assert row["items_per_s"] > row["samples_per_s"] > 0  # each sequence encodes several items
    assert row["tokens_per_s"] > row["items_per_s"]  # every title has at least one token, most several
    assert len(row["valid_ndcg10_curve"]) == len(row["valid_train_s_curve"]) == 1
    assert row["tta_s"] == row["valid_train_s_curve"][0] > 0 and row["tta_fraction"] == 0.95
    assert row["compiled"] is None  # not asked for: no compile columns


def test_compile_time_is_kept_out_of_the_measured_steps(write_suite, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # no cache dir left in the environment
    row = empty_row()
    extra = "  compile: true\n  compile_backend: aot_eager\n"
    run_cell(_config(write_suite, "[{name: iisan_cached, options: {layer_stride: 1}}]", extra), row, lambda event: None)
    assert row["compiled"] is True and row["compile_backend"] == "aot_eager"
    assert row["compile_steps"] >= 1 and row["compile_s"] > 0
    # 1 warm-up step (it compiled): the measured steps are the later ones that compiled nothing.
    compile_steps_after_warmup = row["compile_steps"] - 1
    assert row["measured_steps"] == len(row["train_loss"]) - 1 - compile_steps_after_warmup >= 2
    # No figure about how long compiling took against a step: a timing, which a loaded machine can turn around.


def test_compile_falls_back_to_eager_with_a_clear_message(write_suite, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))

    def broken(graph_module, example_inputs):
        raise RuntimeError("this backend cannot compile anything")

    import torch._dynamo

    torch._dynamo.reset()
    from torch._dynamo.backends.registry import register_backend

    if "mmbench_test_broken" not in torch._dynamo.list_backends(exclude_tags=()):
        register_backend(name="mmbench_test_broken")(broken)
    row = empty_row()
    extra = "  compile: true\n  compile_backend: mmbench_test_broken\n"
    run_cell(_config(write_suite, "[{name: iisan_cached, options: {layer_stride: 1}}]", extra), row, lambda event: None)
    assert row["compiled"] is False and row["compile_s"] is None
    assert any("train.compile fell back to eager" in w and "cannot compile anything" in w for w in row["warnings"])
    assert row["measured_steps"] == len(row["train_loss"]) - 1 and row["step_ms_median"] > 0


def test_inductor_on_a_cpu_without_a_compiler_says_so(monkeypatch):
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    monkeypatch.setenv("CXX", "g++-missing")
    loss = compile_module.CompiledLoss(lambda x: x, enabled=True, backend="inductor", device=torch.device("cpu"))
    assert not loss.active and "needs a C++ compiler" in loss.fallback and "g++-missing" in loss.fallback
    assert loss(3) == 3  # runs eager
    figures = loss.figures(1.0)
    assert figures.compiled is False and figures.compile_backend == "inductor"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_memory_stack_adds_up_to_the_nvml_process_peak(write_suite):
    text = write_suite(methods="[lora]", max_steps=6).read_text()
    text = text.replace("  device: cpu\n", "  device: cuda\n  precision: bf16\n")
    row = empty_row()
    run_cell(expand_cells(load_suite(write_suite(methods="[lora]", text=text)))[0].config, row, lambda event: None)
    static = sum(row[c] for c in ("weights_trainable_bytes", "weights_frozen_bytes", "gradient_bytes"))
    static += row["optimizer_state_bytes"]
    dynamic = row["activation_peak_bytes"] + row["allocator_slack_bytes"]
    if row["nvml_peak_process_gib"] is None:  # NVML could not identify this GPU: no context figure
        assert row["cuda_context_bytes"] is None
    else:
        dynamic += row["cuda_context_bytes"]
        assert static + dynamic == pytest.approx(row["nvml_peak_process_gib"] * GIB, rel=1e-6)
    assert row["activation_peak_bytes"] > 0 and row["tflops_per_s"] > 0
    if find_peak(torch.cuda.get_device_name()) is not None:
        assert 0 < row["mfu"] < 1 and row["peak_tflops_source"]


def test_new_settings_keep_existing_config_ids_and_tta_fraction_is_not_work(write_suite):
    from benchmark.suite.matrix import config_hash, config_id

    config = _config(write_suite, "[lora]")
    plain = config.to_dict()
    before = {**plain, "train": {k: v for k, v in plain["train"].items() if not k.startswith("compile")}}
    before["eval"] = {k: v for k, v in plain["eval"].items() if k != "tta_fraction"}
    # A row written before these settings existed keeps its id and its resume.
    assert config_id(before) == config_id(config) and config_hash(before) == config_hash(config)
    compiled = config.replace(train=dataclasses.replace(config.train, compile=True))
    assert config_id(compiled) != config_id(config)  # compiling is other work
    other_fraction = config.replace(eval=dataclasses.replace(config.eval, tta_fraction=0.9))
    assert config_id(other_fraction) == config_id(config)  # an analysis setting, stored on the row


def test_tta_fraction_outside_0_1_is_refused(write_suite):
    from benchmark.errors import SuiteError

    with pytest.raises(SuiteError, match="tta_fraction.*must be <= 1.0"):
        load_suite(write_suite(methods="[lora]"), ["eval.tta_fraction=1.5"])


def test_every_cell_compiles_cold_unless_the_user_chose_a_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    first = compile_module.CompiledLoss(lambda x: x, enabled=True, backend="eager", device=torch.device("cpu"))
    fresh = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert "mmbench-inductor-" in fresh and os.listdir(fresh) == [] and first.active
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    compile_module.CompiledLoss(lambda x: x, enabled=True, backend="eager", device=torch.device("cpu"))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
