"""Bad input of every kind ends in a clear message naming the file, line or cell, and loses or overwrites nothing."""

from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import DatasetError, SuiteError
from benchmark.formats.importer import import_dataset, inspect_dataset
from benchmark.formats.registry import read_dataset
from benchmark.plan.loader import load_suite
from benchmark.results.store import write_row
from tests.test_import import amazon

runner = CliRunner()


def import_amazon(source, out, *options: str):
    """`mmbench data import SOURCE --format amazon-iisan --out OUT OPTIONS...`."""
    return runner.invoke(app, ["data", "import", str(source), "--format", "amazon-iisan", "--out", str(out), *options])


LATIN1_TITLE = "caf\u00e9 au lait".encode("latin-1")  # b"caf\xe9 ...": not UTF-8


def small_amazon(tmp_path, name="src"):
    return amazon(tmp_path / name, "a\tAlpha\nb\tBeta\nc\tGamma\n", "u1\ta b c a\nu2\tc b a c\nu3\tb a c b\n")


# --- safe import ---------------------------------------------------------------------------------


def test_import_onto_the_source_is_refused_and_deletes_nothing(tmp_path):
    source = small_amazon(tmp_path)
    images = sorted(p.name for p in (source / "images").iterdir())
    outcome = runner.invoke(
        app, ["data", "import", str(source), "--format", "amazon-iisan", "--out", str(source), "--force"]
    )
    assert outcome.exit_code == 2 and "is the source directory itself" in outcome.stderr
    assert sorted(p.name for p in (source / "images").iterdir()) == images  # the source images are still there
    for out, message in ((source / "inside", "inside the source"), (tmp_path, "contains the source")):
        with pytest.raises(DatasetError, match=message):
            import_dataset(source, "amazon-iisan", out, force=True)


def test_force_replaces_only_an_earlier_import(tmp_path):
    source = small_amazon(tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(DatasetError, match="is not an `mmbench data import` output"):
        import_dataset(source, "amazon-iisan", precious, force=True)
    assert (precious / "thesis.tex").read_text() == "do not delete"
    out = tmp_path / "out"
    import_dataset(source, "amazon-iisan", out)
    import_dataset(source, "amazon-iisan", out, force=True)  # an earlier import is replaced
    assert (out / "manifest.json").is_file()


def test_media_links_are_absolute_and_resolved(tmp_path, monkeypatch):
    small_amazon(tmp_path)
    monkeypatch.chdir(tmp_path)
    import_dataset(tmp_path / "src" / ".." / "src", "amazon-iisan", tmp_path / "out")
    link = tmp_path / "out" / "images" / "1.jpg"
    target = os.readlink(link)
    assert os.path.isabs(target) and ".." not in target and link.resolve().is_file()


def test_import_keeps_everything_by_default_and_warns_about_big_drops(tmp_path):
    # Users with 4 items and items seen a handful of times: a 5-core default dropped most of such data.
    source = small_amazon(tmp_path)
    summary = import_dataset(source, "amazon-iisan", tmp_path / "out")
    assert summary["options"]["k_core"] == 0 and summary["kept"] == {"users": 1.0, "items": 1.0, "interactions": 1.0}
    assert summary["warnings"] == []
    outcome = import_amazon(source, tmp_path / "k5", "--k-core", "5", "--on-error", "skip")
    assert outcome.exit_code == 2 and "no user is left after filtering (k-core 5" in outcome.stderr
    kept = import_amazon(source, tmp_path / "short", "--min-seq-len", "4", "--on-error", "skip")
    assert kept.exit_code == 0 and "kept    users 100.0%" in kept.stdout
    # Below the rule, an import would write users that every suite then drops.
    refused = import_amazon(source, tmp_path / "three", "--min-seq-len", "3")
    assert refused.exit_code == 2
    assert "--min-seq-len 3 is below the rule: a user needs at least 4 items" in refused.stderr
    shrunk = amazon(tmp_path / "shrunk", "a\tAlpha\nb\tBeta\nc\tGamma\n", "u1\ta b c a\nu2\tc b a\nu3\tb a c b\n")
    warned = import_amazon(shrunk, tmp_path / "w", "--on-error", "skip")
    assert warned.exit_code == 0 and "warning: dropped 33.3% of the users" in warned.stderr
    assert "user 'u2': 3 items, fewer than the minimum 4" in warned.stdout


# --- text encodings ------------------------------------------------------------------------------


def latin1_dataset(tmp_path):
    """Six items, the second with a latin-1 title; four users of five items each."""
    source = amazon(
        tmp_path / "latin",
        "a\tA\nb\tB\nc\tC\nd\tD\ne\tE\nf\tF\n",
        "u1\ta b c d e\nu2\tf e d c b\nu3\tb c d e f\nu4\te d c b a\n",
    )
    (source / "items.tsv").write_bytes(b"a\tAlpha\nb\t" + LATIN1_TITLE + b"\nc\tC\nd\tD\ne\tE\nf\tF\n")
    return source


def test_a_bad_byte_is_a_problem_with_file_line_and_offset(tmp_path):
    source = latin1_dataset(tmp_path)
    report = inspect_dataset(source, "amazon-iisan")
    problem = next(p for p in report["problems"]["all"] if "not valid utf-8" in p)
    assert problem.startswith(f"{source / 'items.tsv'}:2: byte 13: not valid utf-8")
    failed = runner.invoke(
        app, ["data", "import", str(source), "--format", "amazon-iisan", "--out", str(tmp_path / "o")]
    )
    assert failed.exit_code == 2 and "items.tsv:2: byte 13" in failed.stderr and not (tmp_path / "o").exists()
    skipped = import_dataset(source, "amazon-iisan", tmp_path / "skip", on_error="skip")
    assert skipped["written"]["items"] == 5  # the undecodable item goes, and the sequences lose it
    named = import_dataset(source, "amazon-iisan", tmp_path / "latin1", encoding="latin-1")
    assert named["written"]["items"] == 6
    assert "caf\u00e9 au lait" in (tmp_path / "latin1" / "items.tsv").read_text(encoding="utf-8")


def test_encoding_in_a_suite_and_an_unknown_one(tmp_path, write_suite):
    source = latin1_dataset(tmp_path)
    text = (
        write_suite(methods="[bitfit]")
        .read_text()
        .replace(
            "    format: synthetic\n    options: "
            "{users: 40, items: 60, clusters: 4, min_len: 5, max_len: 9, image_size: 16, seed: 1}\n",
            f"    format: amazon-iisan\n    path: {source}\n    encoding: latin-1\n",
        )
    )
    text = text.replace("batch_size: 8", "batch_size: 2").replace(
        "eval:\n  enabled: true", "eval:\n  enabled: true\n  ks: [5]"
    )
    path = write_suite(text=text)
    assert load_suite(path).datasets[0].encoding == "latin-1"
    assert read_dataset("amazon-iisan", source, encoding="latin-1").titles[1] == "caf\u00e9 au lait"
    path.write_text(path.read_text().replace("encoding: latin-1", "encoding: utf-8"))
    with pytest.raises(SuiteError, match=r"(?s)cannot be read: .*items.tsv:2: byte 13: not valid utf-8"):
        load_suite(path)
    path.write_text(path.read_text().replace("encoding: utf-8", "encoding: latin-1").replace("ks: [5]", "ks: [10]"))
    with pytest.raises(SuiteError, match=r"eval\.ks\[0\]: @10 is not below the 6 items"):
        load_suite(path)
    path.write_text(path.read_text().replace("encoding: latin-1", "encoding: klingon"))
    with pytest.raises(SuiteError, match="unknown text encoding 'klingon'"):
        load_suite(path)
    outcome = runner.invoke(app, ["data", "inspect", str(source), "--format", "amazon-iisan", "--encoding", "klingon"])
    assert outcome.exit_code == 2 and "unknown text encoding" in outcome.stderr


def test_suite_files_that_are_not_utf8_or_not_yaml(tmp_path):
    cases = {
        b"name: caf\xe9\n": "bad.yaml:1: byte 9: not valid UTF-8",
        b"name: x\nmethods:\n  - {name iisan_cached, options: {layer_stride: 1}}\n": (
            "bad.yaml:3: methods[0].name iisan_cached: unknown key"
        ),
        b"name: x\nmethods: [fft\n": "bad.yaml:3:1: malformed YAML",
        b"name: !!python/object:os.system x\n": "bad.yaml:1:7: malformed YAML: could not determine a constructor",
        b"\x00\x01\x02": "malformed YAML",
    }
    for content, expected in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_bytes(content)
        outcome = runner.invoke(app, ["validate", str(path)])
        assert outcome.exit_code == 2 and expected in outcome.stderr, (content, outcome.stderr)
        assert "Traceback" not in outcome.output


# --- validation of values that used to fail only when a cell ran ----------------------------------


@pytest.mark.parametrize(
    "change, expected",
    [
        ("methods: [fft, lora]", "methods: [{name: iisan_versa, options: {fusion: momeff}}]"),
        ("methods: [fft, lora]", "methods: [{name: adapter, options: {activation: tanh}}]"),
    ],
)
def test_bad_option_values_are_caught_by_validate(write_suite, change, expected):
    path = write_suite()
    path.write_text(path.read_text().replace(change, expected))
    with pytest.raises(SuiteError) as raised:
        load_suite(path)
    message = str(raised.value)
    assert f"{path}:" in message and "unknown value" in message
    assert "did you mean 'momef'" in message if "momeff" in expected else "choices: gelu, relu" in message


def test_ks_seeds_names_and_set_conflicts(write_suite, tmp_path):
    path = write_suite()
    base = path.read_text()
    path.write_text(base.replace("eval:\n  enabled: true", "eval:\n  enabled: true\n  ks: [5, 500]"))
    with pytest.raises(SuiteError, match=r"eval\.ks\[1\]: @500 is not a stored cut-off"):
        load_suite(path)
    path.write_text(base.replace("seeds: [0]", "seeds: [0, 0]"))
    with pytest.raises(SuiteError, match=r"seeds\[1\]: seed 0 is listed twice"):
        load_suite(path)
    path.write_text(base.replace("name: tiny", "name: ../../etc/evil"))
    with pytest.raises(SuiteError, match="is not a plain name"):
        load_suite(path)
    path.write_text(base + "matrix:\n  train.batch_size: [4, 8]\n")
    with pytest.raises(
        SuiteError, match=r"--set train.batch_size=4: .*suite.yaml:\d+: the suite's matrix also sets train.batch_size"
    ):
        load_suite(path, ["train.batch_size=4"])


# --- every problem, and every surface ------------------------------------------------------------


def test_every_problem_in_json_and_in_a_file(tmp_path):
    items = "".join(f"i{n}\tTitle {n}\n" for n in range(30))
    users = "u0\t" + " ".join(f"i{n}" for n in range(30)) + "\n"
    source = amazon(tmp_path / "many", items, users, images=("i29",))  # 30 items, 29 without their image
    as_json = json.loads(
        runner.invoke(app, ["data", "inspect", str(source), "--format", "amazon-iisan", "--json"]).stdout
    )
    assert as_json["problems"]["count"] == 29 and len(as_json["problems"]["all"]) == 29
    assert f"item 'i0': no image at {source / 'images' / 'i0.jpg'}" in as_json["problems"]["all"]
    listing = tmp_path / "problems.txt"
    shown = runner.invoke(app, ["data", "inspect", str(source), "--format", "amazon-iisan", "--problems", str(listing)])
    assert shown.exit_code == 0 and "... and 9 more (all in" in shown.stdout and "no image: 29" in shown.stdout
    assert len(listing.read_text().splitlines()) == 29
    refused = import_amazon(source, tmp_path / "o", "--problems", str(tmp_path / "import-problems.txt"))
    assert refused.exit_code == 2 and len((tmp_path / "import-problems.txt").read_text().splitlines()) == 29


def test_unwritable_cache_and_output_are_one_clear_line(tmp_path, write_suite, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MMBENCH_CACHE", str(blocker / "cache"))  # cannot be created: its parent is a file
    listed = runner.invoke(app, ["cache", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    built = runner.invoke(
        app, ["cache", "build", str(write_suite(methods="[{name: iisan_cached, options: {layer_stride: 1}}]"))]
    )
    assert built.exit_code == 2 and "cannot be created" in built.stderr and "MMBENCH_CACHE" in built.stderr
    assert "Traceback" not in built.output
    source = small_amazon(tmp_path)
    imported = runner.invoke(
        app, ["data", "import", str(source), "--format", "amazon-iisan", "--out", str(blocker / "out")]
    )
    assert imported.exit_code == 2 and "cannot write the import" in imported.stderr


def test_result_files_honour_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        path = write_row(tmp_path / "row.parquet", {"cell_id": "c", "status": "ok"})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664  # group-readable, not mkstemp's 0600


def test_csv_and_json_reports_include_failed_cells(tmp_path):
    from tests.test_tpme import rows

    frame = rows(
        [
            {"method": "fft", "epoch_s": 4.0, "trainable_params": 9, "peak_mem_gib": 2.0},
            {"method": "lora", "status": "oom", "error": "CUDA out of memory"},
        ]
    )
    for index, row in enumerate(frame.to_dicts()):
        write_row(tmp_path / f"{index}.parquet", row)
    csv = runner.invoke(app, ["report", "--results", str(tmp_path), "--format", "csv"]).stdout.splitlines()
    header = csv[0].split(",")
    assert len(csv) == 3 and "status" in header and "error" in header
    assert csv[2].split(",")[header.index("status")] == "oom" and "CUDA out of memory" in csv[2]
    data = json.loads(runner.invoke(app, ["report", "--results", str(tmp_path), "--format", "json"]).stdout)
    assert data["failures"][0]["status"] == "oom" and data["failures"][0]["error"] == "CUDA out of memory"
