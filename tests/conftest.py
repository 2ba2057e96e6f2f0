from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Generated datasets go to a per-session cache, never the user's."""
    os.environ["MMBENCH_CACHE"] = str(tmp_path_factory.mktemp("mmbench-cache"))
    # Device locks of this test session only: a stale lock elsewhere on the machine must not stall the tests.
    os.environ["MMBENCH_LOCK_DIR"] = str(tmp_path_factory.mktemp("mmbench-locks"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield


TINY_SUITE = """\
name: tiny
datasets:
  - name: synth
    format: synthetic
    options: {{users: 40, items: 60, clusters: 4, min_len: 5, max_len: 9, image_size: 16, seed: 1}}
towers:
  - name: micro
    text: {{preset: bert-tiny, weights: random, max_tokens: 8}}
    image: {{preset: vit-micro, weights: random, image_size: 16}}
methods: {methods}
train:
  batch_size: 8
  max_seq_len: 5
  epochs: 1
  max_steps: {max_steps}
  warmup_steps: 1
  device: cpu
eval:
  enabled: {eval}
seeds: [0]
"""


@pytest.fixture
def write_suite(tmp_path):
    def write(
        methods: str = "[fft, lora]", max_steps: int | str = 3, evaluate: bool = True, text: str | None = None
    ) -> Path:
        path = tmp_path / "suite.yaml"
        path.write_text(
            text
            if text is not None
            else TINY_SUITE.format(methods=methods, max_steps=max_steps, eval=str(evaluate).lower())
        )
        return path

    return write


def tiny_synthetic_dataset(seed: int, **extra: object) -> dict:
    """A suite dataset entry for a small synthetic dataset (24 users, 30 items), as the method tests use."""
    options = {"users": 24, "items": 30, "clusters": 3, "min_len": 5, "max_len": 8, "image_size": 16, "stay_prob": 0.85}
    return {"name": "s", "format": "synthetic", "path": None, "options": {**options, "seed": seed, **extra}}
