"""`validate` knows before a run what would fail or harm the machine at run time (issue 24): max_seq_len against
the data and the memory, max_steps against warmup_steps, layer indices against the towers, media files present and
decodable, every problem of every stage at once, and launcher names in `run --dry-run`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import SuiteError
from benchmark.plan import data_checks
from benchmark.plan.loader import load_suite
from tests.test_import import amazon

runner = CliRunner()
GIB = 1024**3


def problems_of(path, **options) -> str:
    with pytest.raises(SuiteError) as caught:
        load_suite(path, **options)
    return "\n".join(caught.value.problems)


@pytest.fixture
def machine_of_16_gib(monkeypatch):
    """The memory validation compares with, whatever this machine has."""
    monkeypatch.setattr(data_checks, "memory_limit", lambda device: (16 * GIB, "host memory"))


# --- max_seq_len against the data and the memory ----------------------------------------------------------------


def test_max_seq_len_whose_step_cannot_fit_is_refused(write_suite, machine_of_16_gib):
    # The longest synthetic sequence has 9 items; a 100000-item history grew a cell to 22 GB until the kernel killed it.
    path = write_suite()
    path.write_text(path.read_text().replace("max_seq_len: 5", "max_seq_len: 100000"))
    line = path.read_text().splitlines().index("  max_seq_len: 100000") + 1
    problems = problems_of(path)
    assert f"{path}:{line}: train.max_seq_len: max_seq_len 100000 cannot fit: at least " in problems
    assert "SASRec's attention mask" in problems and "more than the 16.0 GiB of host memory here" in problems
    assert "whose longest history has 8 items" in problems


def test_max_seq_len_far_beyond_the_data_is_a_warning(write_suite, machine_of_16_gib):
    path = write_suite()
    path.write_text(path.read_text().replace("max_seq_len: 5", "max_seq_len: 200"))
    warnings: list[str] = []
    load_suite(path, warnings=warnings)
    assert len(warnings) == 1 and "train.max_seq_len: max_seq_len 200 is far beyond the longest history" in warnings[0]
    outcome = runner.invoke(app, ["validate", str(path)])
    assert outcome.exit_code == 0 and "warning: " in outcome.stderr and "1 warning(s)" in outcome.stdout
    as_json = json.loads(runner.invoke(app, ["validate", str(path), "--json"]).stdout)
    assert as_json["ok"] and as_json["warnings"] == warnings
    path.write_text(path.read_text().replace("max_seq_len: 200", "max_seq_len: 30"))  # within 4x the data: fine
    quiet: list[str] = []
    load_suite(path, warnings=quiet)
    assert quiet == []


# --- steps ----------------------------------------------------------------------------------------------------------


def test_max_steps_not_above_warmup_steps_is_refused(write_suite):
    path = write_suite(max_steps=1)  # warmup_steps: 1 in the fixture
    assert "train.max_steps: max_steps 1 is not above warmup_steps 1: every step would be warm-up" in problems_of(path)
    path.write_text(write_suite(max_steps="null").read_text().replace("warmup_steps: 1", "warmup_steps: 5"))
    # 40 sequences in batches of 8: 5 steps in the one epoch, all warm-up
    assert "train.warmup_steps: warmup_steps 5 leaves nothing to measure on dataset 'synth': 5 step(s)" in problems_of(
        path
    )


# --- layer indices against the towers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, expected",
    [
        (
            "{name: iisan, options: {layers: [0, 99]}}",
            "methods[0].options: text tower 'bert-tiny' has hidden states 0..2; layer indices [99] do not exist "
            "(tower set 'micro', towers[0])",
        ),
        ("{name: iisan_versa, options: {groups: 5}}", "cannot split 2 layers into 5 groups (need 1 to 2)"),
        ("{name: crossan, options: {blocks: 3}}", "cannot split 2 layers into 3 groups"),
    ],
)
def test_layer_plans_are_checked_against_the_presets(write_suite, method, expected):
    assert expected in problems_of(write_suite(methods=f"[{method}]"))


def test_iisan_on_towers_it_cannot_pair_is_refused(write_suite):
    path = write_suite(methods="[iisan]")
    path.write_text(path.read_text().replace("preset: vit-micro", "preset: vit-tiny"))  # 12 layers of width 192
    assert "IISAN needs symmetric towers" in problems_of(path)


# --- every problem of every stage at once --------------------------------------------------------------------------


def test_problems_of_every_stage_come_together(write_suite):
    path = write_suite(methods="[{name: lora, options: {rank: 4}}, {name: iisan, options: {layers: [0, 99]}}]")
    path.write_text(path.read_text().replace("  epochs: 1", "  epochz: 1"))
    problems = problems_of(path)
    assert "train.epochz: unknown key (did you mean 'epochs'?)" in problems  # structure
    assert "methods[0].options.rank: unknown key" in problems  # method options
    assert "layer indices [99] do not exist" in problems  # layer plans


# --- media files ----------------------------------------------------------------------------------------------------


def real_data_suite(write_suite, tmp_path, images=None):
    items = "".join(f"i{n}\tTitle {n}\n" for n in range(8))
    users = "".join(f"u{u}\t" + " ".join(f"i{(u + n) % 8}" for n in range(6)) + "\n" for u in range(4))
    source = amazon(tmp_path / "data", items, users, images=images)
    text = write_suite(methods="[bitfit]").read_text()
    start = text.index("  - name: synth")
    entry = f"  - name: real\n    format: amazon-iisan\n    path: {source}\n"
    text = text[:start] + entry + text[text.index("towers:") :]
    text = text.replace("batch_size: 8", "batch_size: 2").replace("enabled: true", "enabled: true\n  ks: [5]")
    return write_suite(text=text), source


def test_missing_images_are_found_by_validate(write_suite, tmp_path):
    path, source = real_data_suite(write_suite, tmp_path, images=[f"i{n}" for n in range(6)])
    problems = problems_of(path)
    assert "datasets[0]: dataset 'real': 2 of 8 items' image files are missing or unreadable (no image: 2)" in problems
    assert f"item 'i6': no image at {source / 'images' / 'i6.jpg'}" in problems
    outcome = runner.invoke(app, ["validate", str(path)])
    assert outcome.exit_code == 2 and "Traceback" not in outcome.output


def test_data_problems_come_with_structural_ones(write_suite, tmp_path):
    path, _ = real_data_suite(write_suite, tmp_path, images=[f"i{n}" for n in range(6)])
    path.write_text(path.read_text().replace("methods: [bitfit]", "methods: [bitfitt]").replace("epochs", "epochz"))
    problems = problems_of(path)
    assert "methods[0].name: unknown value 'bitfitt'" in problems and "train.epochz: unknown key" in problems
    assert "dataset 'real': 2 of 8 items' image files are missing" in problems


def test_corrupt_images_are_found_by_validate_deep(write_suite, tmp_path):
    path, source = real_data_suite(write_suite, tmp_path)
    good = (source / "images" / "i3.jpg").read_bytes()
    (source / "images" / "i3.jpg").write_bytes(good[: len(good) // 2])  # a header, then nothing
    load_suite(path)  # presence only: every file is there
    assert "unreadable image for item 'i3'" in problems_of(path, decode_media=True)
    outcome = runner.invoke(app, ["validate", str(path), "--deep"])
    assert outcome.exit_code == 2 and f"{source / 'images' / 'i3.jpg'}: unreadable image" in outcome.stderr


def test_synthetic_data_without_the_media_a_tower_reads(write_suite):
    path = write_suite(methods="[crossan]")
    path.write_text(
        path.read_text().replace(
            "    image: {preset", "    video: {preset: videomae-micro, weights: random}\n    image: {preset"
        )
    )
    assert "synthetic dataset 'synth' has no video, which a tower set reads: set `video: true`" in problems_of(path)


# --- launcher names -------------------------------------------------------------------------------------------------


def test_dry_run_refuses_an_unknown_launcher(write_suite):
    path = write_suite()
    outcome = runner.invoke(app, ["run", str(path), "--launcher", "bogus", "--dry-run"])
    assert (
        outcome.exit_code == 2 and "--launcher: unknown launcher 'bogus' (known: local, pool, slurm)" in outcome.stderr
    )
    outcome = runner.invoke(
        app, ["run", str(path), "--launcher", "slurm", "--launcher-option", "cluster=moon", "--dry-run"]
    )
    assert outcome.exit_code == 2 and "run.slurm.cluster" in outcome.stderr and "moon" in outcome.stderr, outcome.stderr


# --- data inspect: an unusable dataset ------------------------------------------------------------------------------


def test_inspect_reports_an_empty_dataset_as_unusable(tmp_path):
    source = amazon(tmp_path / "empty", "", "")
    outcome = runner.invoke(app, ["data", "inspect", str(source), "--format", "amazon-iisan"])
    assert outcome.exit_code == 2 and "problems 1  unusable dataset: 1" in outcome.stdout
    assert "error: " in outcome.stderr and "the dataset is empty" in outcome.stderr
    as_json = runner.invoke(app, ["data", "inspect", str(source), "--format", "amazon-iisan", "--json"])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["usable"] is False


def test_memory_limit_is_the_largest_gpu_without_a_cuda_context(monkeypatch):
    """NVML, not torch.cuda: `mmbench run` validates its suite and must not hold a CUDA context while cells run."""
    import sys
    import types

    from benchmark.plan import feasibility

    sizes = [80 * GIB, 141 * GIB]
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(sizes),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(total=sizes[handle]),
        nvmlDeviceGetName=lambda handle: b"H200",
        nvmlDeviceGetUUID=lambda handle: f"GPU-{handle}",
        NVMLError=RuntimeError,
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert feasibility.memory_limit("auto") == (141 * GIB, "GPU memory (H200)")
    assert feasibility.memory_limit("cpu")[1] == "host memory"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML: import fails
    assert feasibility.memory_limit("cuda") is None and feasibility.memory_limit("auto")[1] == "host memory"


# --- a generated format from a plug-in is checked like the built-in synthetic one ----------------------------------


def test_a_generated_plugin_format_is_checked_from_its_options_without_generating(write_suite, monkeypatch):
    """No check special-cases the name 'synthetic': a plug-in's generated format says what its options decide
    (`predict`), and validation checks the suite against that without generating anything."""
    from benchmark.errors import MMBenchError
    from benchmark.formats.registry import FORMATS, DatasetFormat, PredictedData

    def never(options):
        raise MMBenchError("validation generated the data")

    def predict(options):
        problems = (("length", "length 2 leaves no usable user"),) if options["length"] < 4 else ()
        return PredictedData(options["users"], 12, options["length"], ("image",), problems, (), "ask for {modality}")

    monkeypatch.setattr(FORMATS, "_entries", {**FORMATS._entries})
    FORMATS.register(
        "counted",
        DatasetFormat("counted", read=never, needs_path=False, options={"users": 6, "length": 5}, generate=never,
                      predict=predict, importable=False),
    )  # fmt: skip
    path = write_suite()
    synthetic = "options: {users: 40, items: 60, clusters: 4, min_len: 5, max_len: 9, image_size: 16, seed: 1}"
    text = path.read_text().replace(
        f"format: synthetic\n    {synthetic}", "format: counted\n    options: {users: 6, length: 2}"
    )
    path.write_text(text.replace("batch_size: 8", "batch_size: 16"))
    problems = problems_of(path)
    assert "datasets[0].options.length: length 2 leaves no usable user" in problems
    path.write_text(text.replace("length: 2", "length: 5").replace("batch_size: 8", "batch_size: 16"))
    problems = problems_of(path)
    assert "batch_size 16" in problems and "6" in problems and "validation generated the data" not in problems
