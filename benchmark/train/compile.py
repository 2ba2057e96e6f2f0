"""`train.compile`: the training loss through torch.compile, with the time spent compiling kept out of the
measured steps, and a clear fallback to eager where compilation cannot run.

Dynamo compiles lazily, on the first call and again when shapes change (a batch encodes as many items as its
sequences have positions), so compilation can land in any step: a step during which a new graph appeared is a
compile step. Its time, beyond a median step, is the row's `compile_s`; it never enters `step_ms`. Every cell
compiles cold (an empty inductor cache of its own), so compile_s means the same in every repeat.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from benchmark.results.pieces import Compilation
from benchmark.suite.config import CUDA_GRAPH_MODES


class CompileUnavailable(Exception):
    """torch.compile cannot run here; the message says why (the cell falls back to eager)."""


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# Ways of asking for CUDA graphs: inductor's modes that capture the compiled graph, and dynamo's cudagraphs backend.
CUDA_GRAPH_BACKEND = "cudagraphs"


def uses_cuda_graphs(backend: str, mode: str) -> bool:
    return backend == CUDA_GRAPH_BACKEND or (backend == "inductor" and mode in CUDA_GRAPH_MODES)


def check_compiler(backend: str, device: torch.device, mode: str = "default") -> None:
    """What cannot work here, said before the first step rather than deep inside it: CUDA graphs need a CUDA device
    (elsewhere inductor would quietly compile without them, and the row would claim graphs it never had); inductor
    on a CPU writes C++ and needs a compiler."""
    if uses_cuda_graphs(backend, mode) and device.type != "cuda":
        how = f"backend '{backend}'" if backend == CUDA_GRAPH_BACKEND else f"compile_mode '{mode}'"
        raise CompileUnavailable(f"{how} captures CUDA graphs, which need a CUDA device (this cell runs on {device})")
    if backend != "inductor" or device.type != "cpu":
        return
    wanted = os.environ.get("CXX") or "g++"
    if shutil.which(wanted) is None and shutil.which("c++") is None and shutil.which("clang++") is None:
        raise CompileUnavailable(
            f"torch.compile (inductor) on a CPU needs a C++ compiler and none was found (CXX={wanted!r}, c++, "
            "clang++); install one (e.g. apt-get install g++) or set train.compile_backend: aot_eager"
        )


def _reason(error: Exception) -> str:
    """One line: the error and, for a backend's failure, what the backend raised (dynamo wraps it)."""
    inner = getattr(error, "inner_exception", None)
    cause = error if inner is None else inner
    text = " ".join(str(cause).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(error).__name__}" + (f" ({type(inner).__name__})" if inner is not None else "") + f": {text}"


class CompiledLoss:
    """The model's training loss, compiled when asked; `call` reports whether this step compiled a graph."""

    def __init__(
        self,
        loss: Callable[..., torch.Tensor],
        enabled: bool,
        backend: str,
        device: torch.device,
        mode: str = "default",
    ):
        self.eager = loss
        self.backend = backend if enabled else None
        self.mode = mode
        self.cuda_graphs = enabled and uses_cuda_graphs(backend, mode)
        self.fallback: str | None = None
        self.compile_step_ms: list[float] = []
        self.function: Callable[..., torch.Tensor] = loss
        self._cache_dir: tempfile.TemporaryDirectory[str] | None = None
        if enabled:
            self._cold_cache()
            try:
                check_compiler(backend, device, mode)
                # mode applies to inductor; other backends take none
                self.function = torch.compile(loss, backend=backend, mode=mode if backend == "inductor" else None)
            except CompileUnavailable as error:
                self.fall_back(str(error))

    def _cold_cache(self) -> None:
        """Compile from an empty inductor (and Triton) cache, unless the user chose one: inductor reuses compiled
        graphs and kernels from disk, so without this the first repeat would pay the compile and the later ones not."""
        if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
            return
        self._cache_dir = tempfile.TemporaryDirectory(prefix="mmbench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = self._cache_dir.name
        os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(self._cache_dir.name, "triton"))

    @property
    def active(self) -> bool:
        return self.backend is not None and self.fallback is None

    def fall_back(self, reason: str) -> None:
        self.fallback = f"train.compile fell back to eager: {reason}"
        self.function = self.eager

    def graphs(self) -> int:
        return _graphs() if self.active else 0

    def __call__(self, *args: Any) -> torch.Tensor:
        if not self.active:
            return self.eager(*args)
        if self.cuda_graphs:
            # A new training iteration: the graphs' outputs of the previous step (its loss, read already) may be
            # overwritten by this replay.
            torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]  # unannotated in torch
        try:
            return self.function(*args)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure: run eager and say why on the row
            self.fall_back(_reason(error))
            return self.eager(*args)

    def figures(self, median_step_ms: float | None) -> Compilation | None:
        if self.backend is None:
            return None
        excess = [max(ms - (median_step_ms or 0.0), 0.0) for ms in self.compile_step_ms]
        return Compilation(
            compiled=self.active,
            compile_backend=self.backend,
            compile_mode=self.mode,
            cuda_graphs=self.active and self.cuda_graphs,
            compile_s=sum(excess) / 1000.0 if self.active else None,
            compile_steps=len(self.compile_step_ms) if self.active else None,
        )
