"""Property-based: generated suites and dataset files never end in a traceback and never leave a partial output.

Hypothesis mutates a valid suite (keys, values, YAML syntax, encodings, binary bytes, huge lines,
missing files) and valid dataset files; `validate`, `run --dry-run`, `data inspect` and `data import`
must answer with exit code 0 or 2 and a message, never an uncaught exception. A bounded budget runs
in `make test`; a larger one under `-m slow`.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from benchmark.cli import app

runner = CliRunner()

BASE_SUITE: dict[str, Any] = {
    "name": "prop",
    "datasets": [
        {
            "name": "synth",
            "format": "synthetic",
            "options": {
                "users": 40,
                "items": 60,
                "clusters": 4,
                "min_len": 5,
                "max_len": 9,
                "image_size": 16,
                "seed": 1,
            },
        }
    ],
    "towers": [
        {
            "name": "micro",
            "text": {"preset": "bert-tiny", "weights": "random", "max_tokens": 8},
            "image": {"preset": "vit-micro", "weights": "random", "image_size": 16},
        }
    ],
    "methods": ["fft", "lora", {"name": "iisan_versa", "options": {"fusion": "concat"}}],
    "train": {"batch_size": 8, "max_seq_len": 5, "epochs": 1, "max_steps": 3, "warmup_steps": 1, "device": "cpu"},
    "eval": {"enabled": True, "ks": [5, 10]},
    "matrix": {"train.lr": [0.001, 0.0001]},
    "seeds": [0, 1],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["fft", "momef", "cuda", "fp16", "../x", "latin-1", "amazon-iisan"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


@st.composite
def mutated_suites(draw) -> bytes:
    suite = copy.deepcopy(BASE_SUITE)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(suite)
        path = draw(st.sampled_from(paths))
        parent = suite
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "rename"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(path[-1])
    text = yaml.safe_dump(suite, allow_unicode=True)
    damage = draw(st.sampled_from(["none", "insert", "truncate", "encoding", "binary", "huge"]))
    if damage == "insert":
        position = draw(st.integers(0, len(text)))
        text = (
            text[:position]
            + draw(
                st.sampled_from(
                    ["{", "}", "[", ":", "- ", "\t", "'", "&a", "*a", "!!python/name:os.system ", "\n  ", "%YAML 9\n"]
                )
            )
            + text[position:]
        )
    elif damage == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "huge":
        text += "description: " + "x" * 200_000 + "\n"
    if damage == "encoding":
        return text.encode(draw(st.sampled_from(["utf-16", "latin-1", "utf-32"])), errors="replace")
    if damage == "binary":
        return draw(st.binary(max_size=200))
    return text.encode("utf-8", errors="surrogatepass")


def _clean_exit(outcome) -> None:
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), (
        f"{type(outcome.exception).__name__}: {outcome.exception}\n{outcome.output[-2000:]}"
    )
    assert outcome.exit_code in (0, 2), outcome.output[-2000:]
    assert "Traceback" not in outcome.output


def check_suite(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "suite.yaml"
        path.write_bytes(content)
        _clean_exit(runner.invoke(app, ["validate", str(path)]))
        results = Path(directory) / "results"
        _clean_exit(runner.invoke(app, ["run", str(path), "--dry-run", "--results", str(results)]))
        assert not results.exists()  # a dry run writes nothing
    missing = runner.invoke(app, ["validate", "/nonexistent/suite.yaml"])
    _clean_exit(missing)


lines = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["a\tAlpha", "b\t", "\t\t\t", "zz\tZ", "x" * 5000, "u1\ta b a", "u2\tzz a", "u3"]),
)


@st.composite
def dataset_files(draw) -> dict[str, bytes]:
    items = ["a\tAlpha", "b\tBeta", "c\tGamma", "d\tDelta"]
    users = ["u1\ta b c d", "u2\td c b a", "u3\tb c d a"]
    for table in (items, users):
        for _ in range(draw(st.integers(0, 3))):
            table.insert(draw(st.integers(0, len(table))), draw(lines))
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    files = {
        "items.tsv": ("\n".join(items) + "\n").encode(encoding, errors="replace"),
        "users.tsv": ("\n".join(users) + "\n").encode(encoding, errors="replace"),
    }
    if draw(st.booleans()):
        del files[draw(st.sampled_from(sorted(files)))]  # a missing file
    return files


def check_dataset(files: dict[str, bytes], image_keys: list[str]) -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "src"
        (source / "images").mkdir(parents=True)
        for name, content in files.items():
            (source / name).write_bytes(content)
        for key in image_keys:
            if key == "broken":
                (source / "images" / "c.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
            else:
                Image.new("RGB", (4, 4)).save(source / "images" / f"{key}.jpg")
        _clean_exit(runner.invoke(app, ["data", "inspect", str(source), "--format", "amazon-iisan", "--json"]))
        for on_error in ("skip", "fail"):
            out = Path(directory) / f"out-{on_error}"
            outcome = runner.invoke(
                app,
                ["data", "import", str(source), "--format", "amazon-iisan", "--out", str(out), "--on-error", on_error],
            )
            _clean_exit(outcome)
            # Either the whole import is there, or nothing (no staging directory either).
            assert (out / "manifest.json").is_file() if outcome.exit_code == 0 else not out.exists()
            assert not list(Path(directory).glob(f".out-{on_error}*"))


FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
THOROUGH = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
image_sets = st.lists(st.sampled_from(["a", "b", "c", "d", "broken"]), unique=True)


@FAST
@given(mutated_suites())
def test_generated_suites_never_crash(content):
    check_suite(content)


@FAST
@given(dataset_files(), image_sets)
def test_generated_dataset_files_never_crash(files, image_keys):
    check_dataset(files, image_keys)


@pytest.mark.slow
@THOROUGH
@given(mutated_suites())
def test_generated_suites_never_crash_thorough(content):
    check_suite(content)


@pytest.mark.slow
@THOROUGH
@given(dataset_files(), image_sets)
def test_generated_dataset_files_never_crash_thorough(files, image_keys):
    check_dataset(files, image_keys)
