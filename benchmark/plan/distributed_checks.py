"""The checks of a suite's distributed cells (`train.distributed`): what each method, precision, compiler, device,
backend and launcher allows, said at validation with the key's file and line, before any rank starts."""

from __future__ import annotations

from typing import Any

from benchmark.estimate.devices import visible_gpus
from benchmark.methods.registry import get_method_class
from benchmark.plan.entry_checks import setting_values
from benchmark.suite.schema import Validator
from benchmark.suite.yaml_lines import KeyPath


def check_distributed(suite: dict[str, Any], validator: Validator) -> None:
    strategies = [(value, path) for value, path in setting_values(suite, "train", "distributed") if value != "none"]
    ranks = setting_values(suite, "train", "nproc_per_node")
    if not strategies:
        for count, path in ranks:
            if count > 1:
                validator.warn(path, f"nproc_per_node {count} has no effect without train.distributed (ddp or fsdp)")
        return
    _check_methods(suite, strategies, validator)
    if any(strategy == "fsdp" for strategy, _ in strategies):
        for precision, precision_path in setting_values(suite, "train", "precision"):
            if precision == "fp16":
                validator.problem(
                    precision_path,
                    "fp16 under fsdp needs a sharded gradient scaler mmbench does not run: use bf16 (or ddp)",
                )
    for compiled, compile_path in setting_values(suite, "train", "compile"):
        if compiled:
            validator.problem(compile_path, "train.compile does not run with train.distributed (ddp, fsdp) yet")
    devices = [value for value, _ in setting_values(suite, "train", "device")]
    for backend, backend_path in setting_values(suite, "train", "dist_backend"):
        if backend == "nccl" and devices == ["cpu"]:
            validator.problem(backend_path, "dist_backend nccl runs on CUDA GPUs and train.device is cpu: use gloo")
    _check_ranks_fit(suite, ranks, devices, validator)


def _check_methods(suite: dict[str, Any], strategies: list[tuple[str, KeyPath]], validator: Validator) -> None:
    for index, method in enumerate(suite.get("methods") or []):
        if validator.reported(("methods", index)):
            continue
        allowed = get_method_class(method["name"]).distributed_strategies
        for strategy, path in strategies:
            if strategy not in allowed:
                validator.warn(
                    path,
                    f"method '{method['name']}' (methods[{index}]) trains under {' or '.join(allowed)}, "
                    f"not {strategy}: its trainable part is small and its towers frozen, so there is nothing to "
                    f"shard (its cells run {allowed[0]}, and their rows say so)",
                )
        if method.get("base_precision") is not None and any(strategy == "fsdp" for strategy, _ in strategies):
            validator.problem(
                ("methods", index, "base_precision"), "a quantized base cannot be sharded by fsdp: use ddp"
            )


def _check_ranks_fit(
    suite: dict[str, Any], ranks: list[tuple[int, KeyPath]], devices: list[str], validator: Validator
) -> None:
    """Where the ranks' GPUs are known before anything runs: the SLURM task's, this machine's for the local
    launcher."""
    launcher = suite["run"]["launcher"]
    most = max(count for count, _ in ranks)
    path = max(ranks, key=lambda entry: entry[0])[1]
    if launcher == "slurm":
        slurm = suite["run"]["slurm"]
        if slurm["cluster"] != "local" and slurm["gpus_per_task"] < most:
            validator.problem(
                ("run", "slurm", "gpus_per_task"),
                f"a task runs one cell on {most} ranks (train.nproc_per_node), one GPU each: gpus_per_task is "
                f"{slurm['gpus_per_task']}",
            )
        return
    if launcher != "local" or devices == ["cpu"]:
        return
    visible = len(visible_gpus())
    if visible and most > visible:
        validator.problem(path, f"nproc_per_node {most}: this machine shows {visible} CUDA GPU(s), one per rank")
    elif not visible and "cuda" in devices:
        validator.warn(path, "no CUDA GPU is visible here: the distributed cells would find none")
