"""Provenance: where, on what and with which code a row was measured."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

from benchmark import __version__
from benchmark.profile.nvml import nvml_device_for_torch
from benchmark.units import GIB

PACKAGES = ("torch", "transformers", "peft", "numpy", "pyarrow", "polars", "nvidia-ml-py", "typer", "rich", "pyyaml")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"mmbench": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state() -> tuple[str | None, bool | None]:
    """(commit sha, dirty) of the mmbench checkout, or (None, None) for an installed copy."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


# What a cell on no GPU records about one.
NO_GPU: dict[str, Any] = {
    "gpu_name": None,
    "gpu_uuid": None,
    "gpu_memory_gib": None,
    "mig_mode": None,
    "driver_version": None,
    "nvml_available": False,
    "nvml_device_match": None,
}


def gpu_state(device_index: int = 0) -> dict[str, Any]:
    state = dict(NO_GPU)
    if not torch.cuda.is_available():
        return state
    properties = torch.cuda.get_device_properties(device_index)
    state["gpu_name"] = properties.name
    state["gpu_memory_gib"] = properties.total_memory / GIB
    nvml_device = nvml_device_for_torch(device_index)
    state["nvml_device_match"] = nvml_device.match
    if not nvml_device.resolved:
        state["gpu_uuid"] = f"GPU-{properties.uuid}"  # torch's view; NVML could not confirm which device it is
        return state
    nvml, handle = nvml_device.nvml, nvml_device.handle
    state["nvml_available"] = True
    for key, query in (
        ("gpu_uuid", lambda: nvml.nvmlDeviceGetUUID(handle)),
        ("driver_version", nvml.nvmlSystemGetDriverVersion),
        ("mig_mode", lambda: "enabled" if nvml.nvmlDeviceGetMigMode(handle)[0] else "disabled"),
    ):
        try:
            value = query()
            state[key] = value.decode() if isinstance(value, bytes) else value
        except Exception:  # noqa: BLE001 - a query this GPU does not support stays None
            state[key] = None
    if nvml_device.match == "mig":
        state["mig_mode"] = "slice"  # this process runs on one MIG slice of the GPU
    return state


def hardware_identity(device: torch.device) -> dict[str, str]:
    """What a cache build's time depends on: the machine and the device it ran on."""
    if device.type == "cuda":
        name = torch.cuda.get_device_properties(device.index or 0).name
    else:
        name = "cpu " + (platform.processor() or platform.machine())
    return {"host": socket.gethostname(), "device": name}


def capture_environment(device: torch.device | None = None) -> dict[str, Any]:
    sha, dirty = git_state()
    environment = {
        "git_sha": sha,
        "git_dirty": dirty,
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": torch.get_num_threads(),
        "package_versions": package_versions(),
    }
    on_cuda = device is not None and device.type == "cuda"
    environment.update(
        gpu_state(device.index or 0 if device is not None else 0)
        if on_cuda
        else gpu_state()
        if device is None
        else dict(NO_GPU)
    )
    environment["device"] = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return environment
