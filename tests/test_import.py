"""Every loader on small files written here, `data inspect`, and `data import` with skip|fail and atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.data.dataset import split_leave_one_out
from benchmark.errors import DatasetError
from benchmark.formats.importer import import_dataset, inspect_dataset, k_core
from benchmark.formats.registry import load_raw_dataset, read_dataset
from benchmark.modalities.item_files import load_images

runner = CliRunner()


def jpeg(path: Path, colour=(10, 20, 30)) -> None:
    Image.new("RGB", (6, 6), colour).save(path)


def amazon(directory: Path, items: str, users: str, images=None) -> Path:
    (directory / "images").mkdir(parents=True)
    (directory / "items.tsv").write_text(items)
    (directory / "users.tsv").write_text(users)
    keys = images if images is not None else [line.split("\t")[0] for line in items.splitlines() if line.strip()]
    for key in keys:
        jpeg(directory / "images" / f"{key}.jpg")
    return directory


def recbole(directory: Path, inter: str, item: str, images=()) -> Path:
    directory.mkdir(parents=True)
    (directory / "toy.inter").write_text(inter)
    (directory / "toy.item").write_text(item)
    if images:
        (directory / "images").mkdir()
        for key in images:
            jpeg(directory / "images" / f"{key}.jpg")
    return directory


def test_recbole_sorts_by_timestamp_with_stable_ties(tmp_path):
    directory = recbole(
        tmp_path / "r",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\tb\t5\t20\nu1\ta\t4\t10\nu2\tc\t3\t5\nu1\tc\t1\t20\nu2\ta\t2\t1\n",
        "item_id:token\tmovie_title:token_seq\tyear:token\na\tAlpha\t1999\nb\tBeta\t2000\nc\tGamma\t2001\n",
        images=("a", "b", "c"),
    )
    raw = read_dataset("recbole", directory)
    assert raw.titles == ["Alpha", "Beta", "Gamma"]
    # u1: a(10), then b and c both at 20 in file order; u2: a(1), c(5)
    assert dict(zip(raw.user_keys, raw.sequences)) == {"u1": [1, 2, 3], "u2": [1, 3]}
    assert load_images(raw, 4).shape == (4, 3, 4, 4)


def test_recbole_problems_name_file_and_line(tmp_path):
    directory = recbole(
        tmp_path / "r",
        "user_id:token\titem_id:token\ttimestamp:float\nu1\ta\tsoon\nu1\tzz\t3\nu2\ta\n",
        "item_id:token\ttitle:token_seq\na\tAlpha\n",
    )
    with pytest.raises(DatasetError) as caught:
        read_dataset("recbole", directory)
    message = str(caught.value)
    assert "toy.inter:2: timestamp 'soon' is not a number" in message
    assert "toy.inter:4: expected 3 tab-separated fields (user_id, item_id, timestamp), got 2" in message
    assert "toy.inter:3: unknown item id 'zz'" in message
    with pytest.raises(DatasetError, match="toy.item:1: header has no title"):
        read_dataset(
            "recbole", recbole(tmp_path / "t", "user_id:token\titem_id:token\n", "item_id:token\tgenre:token\na\tx\n")
        )


def test_lmdb_images(tmp_path):
    lmdb = pytest.importorskip("lmdb", reason="lmdb not installed (make setup installs it)")
    directory = tmp_path / "l"
    directory.mkdir()
    (directory / "items.tsv").write_text("a\tAlpha\nb\tBeta\n")
    (directory / "users.tsv").write_text("u\ta b a b\n")
    environment = lmdb.open(str(directory / "images.lmdb"), map_size=1 << 24)
    with environment.begin(write=True) as transaction:
        for key, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
            import io

            buffer = io.BytesIO()
            Image.new("RGB", (6, 6), colour).save(buffer, format="PNG")
            transaction.put(key.encode(), buffer.getvalue())
    environment.close()
    raw = read_dataset("amazon-iisan", directory)
    assert "image" in raw.media_stores and raw.has_media("image")
    pixels = load_images(raw, 4)
    assert pixels[1, 0].float().mean() > 200 and pixels[2, 2].float().mean() > 200
    summary = import_dataset(directory, "amazon-iisan", tmp_path / "out", k=0)
    assert summary["written"]["items"] == 2 and (tmp_path / "out" / "images" / "1.jpg").stat().st_size > 0


def test_inspect_counts_everything(tmp_path):
    directory = amazon(
        tmp_path / "a",
        "a\tAlpha\nb\t \nc\tGamma\nd\tDelta\n",
        "u1\ta c d a\nu2\ta zz c\nu3\td\n",
        images=("a", "c"),
    )
    (directory / "images" / "c.jpg").write_bytes(b"not an image")
    report = inspect_dataset(directory, "amazon-iisan")
    assert report["users"] == 3 and report["items"] == 3 and report["interactions"] == 7
    assert report["sequence_length"]["min"] == 1 and report["sequence_length"]["max"] == 4
    assert report["items_without_text"] == 1 and report["items_without_image"] == 1 and report["unreadable_images"] == 1
    assert report["problems"]["by_kind"] == {
        "empty title": 1,
        "unknown item id": 1,
        "no image": 1,
        "unreadable image": 1,
        "too short": 2,  # u2 (after zz) and u3: fewer than the 4 items a user needs
    }
    assert report["usable"] and report["usable_users"] == 1
    outcome = runner.invoke(app, ["data", "inspect", str(directory), "--format", "amazon-iisan"])
    assert outcome.exit_code == 0 and "users 3  items 3  interactions 7" in outcome.stdout
    assert "users.tsv:2: unknown item id 'zz'" in outcome.stdout


def test_import_fails_writing_nothing_or_skips_with_a_summary(tmp_path):
    directory = amazon(
        tmp_path / "a",
        "a\tAlpha\nb\tBeta\nc\tGamma\nd\tDelta\ne\t\n",
        "u1\ta b c d a\nu2\tb c zz d\nu3\ta b\nu4\tc d a b c\n",
        images=("a", "b", "c"),
    )
    out = tmp_path / "imported"
    with pytest.raises(DatasetError) as caught:
        import_dataset(directory, "amazon-iisan", out, k=0)
    assert "items.tsv:5: empty title for item 'e'" in str(caught.value)
    assert not out.exists() and not list(tmp_path.glob(".imported*"))  # nothing half-written
    summary = import_dataset(directory, "amazon-iisan", out, k=0, on_error="skip")
    kinds = summary["skipped"]["by_kind"]
    assert kinds == {"empty title": 1, "unknown item id": 1, "no image": 1, "too short": 2}
    # item d has no image: dropped everywhere; u2 (3 known items) and u3 are too short.
    written = (out / "users.tsv").read_text().splitlines()
    mapping = dict(line.split("\t") for line in (out / "item_map.tsv").read_text().splitlines()[1:])
    decoded = {line.split("\t")[0]: [mapping[i] for i in line.split("\t")[1].split()] for line in written}
    assert decoded == {"u1": ["a", "b", "c", "a"], "u4": ["c", "a", "b", "c"]}
    assert json.loads((out / "manifest.json").read_text())["written"]["users"] == len(written)
    raw = load_raw_dataset({"format": "mmbench", "path": str(out)})
    assert raw.n_items == 3 and all(p is not None and p.is_symlink() for p in raw.media_paths("image"))
    with pytest.raises(DatasetError, match="already exists"):
        import_dataset(directory, "amazon-iisan", out, k=0, on_error="skip")


def test_import_filters_truncates_and_remaps(tmp_path):
    items = "".join(f"i{n}\tTitle {n}\n" for n in range(8))
    users = "u1\t" + " ".join(f"i{n % 4}" for n in range(20)) + "\nu2\ti0 i1 i2 i3 i0 i1\nu3\ti5 i6 i7 i4\n"
    directory = amazon(tmp_path / "a", items, users)
    summary = import_dataset(directory, "amazon-iisan", tmp_path / "out", k=2, max_seq_len=4)
    assert summary["written"]["users"] == 2 and summary["written"]["items"] == 4  # u3 and items 4-7 fail the 2-core
    rows = dict(line.split("\t") for line in (tmp_path / "out" / "users.tsv").read_text().splitlines())
    assert len(rows["u1"].split()) == 4 + 3  # the most recent max_seq_len + 3 items
    mapping = dict(line.split("\t") for line in (tmp_path / "out" / "item_map.tsv").read_text().splitlines()[1:])
    assert [mapping[i] for i in rows["u1"].split()] == [f"i{n % 4}" for n in range(13, 20)]
    split = split_leave_one_out(read_dataset("mmbench", tmp_path / "out"), 4)
    assert [len(h) for h in split.test_history] == [4, 4]


def test_k_core_is_iterative():
    users = [("a", np.array([1, 2])), ("b", np.array([1, 2])), ("c", np.array([3, 1]))]
    # item 3 has one interaction -> c drops to [1] -> c is too short -> item 1 still has 2, item 2 has 2
    assert [(u, s.tolist()) for u, s in k_core(users, 3, 2)] == [("a", [1, 2]), ("b", [1, 2])]


def test_import_command(tmp_path):
    directory = amazon(tmp_path / "a", "a\tAlpha\nb\tBeta\nc\tGamma\n", "u1\ta b c a\nu2\tc b a c\n")
    outcome = runner.invoke(
        app,
        [
            "data",
            "import",
            str(directory),
            "--format",
            "amazon-iisan",
            "--out",
            str(tmp_path / "o"),
            "--k-core",
            "0",
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["written"] == {
        "users": 2,
        "items": 3,
        "interactions": 8,
        "split": {"train_sequences": 2, "valid": 2, "test": 2},
    }
    bad = runner.invoke(
        app, ["data", "import", str(tmp_path / "missing"), "--format", "amazon-iisan", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "dataset directory not found" in bad.stderr


def test_problems_are_structured_not_strings_to_parse(tmp_path):
    directory = amazon(tmp_path / "a", "a\tAlpha\nb\t \nc\tGamma\n", "u1\ta zz c\n", images=("a",))
    details = inspect_dataset(directory, "amazon-iisan")["problems"]["details"]
    by_kind = {problem["kind"]: problem for problem in details}
    assert by_kind["empty title"]["file"].endswith("items.tsv") and by_kind["empty title"]["line"] == 2
    assert by_kind["empty title"]["item"] == "b"
    assert by_kind["unknown item id"]["item"] == "zz" and by_kind["unknown item id"]["line"] == 1
    assert by_kind["no image"]["item"] == "c" and by_kind["no image"]["text"].endswith("c.jpg")
