"""Reader for the MicroLens layout: `*_pairs.tsv` (user<TAB>item ids oldest first), a titles CSV
(`item_id,title`, with header), covers as `<item_id>.jpg` in a `*covers` folder (or `images.lmdb`), and optional
`video/<item_id>.npy` (uint8 [frames, 3, size, size]) and `audio/<item_id>.npy` ([frames, mel bins])
arrays for the video and audio towers (decode the raw media to these arrays once, beforehand)."""

from __future__ import annotations

import csv
from pathlib import Path

from benchmark.data import raw
from benchmark.data.problems import DatasetProblem, at
from benchmark.data.raw import RawDataset
from benchmark.errors import DatasetError
from benchmark.formats.assemble import assemble
from benchmark.formats.registry import DatasetFormat, register_format


def _covers_folder(directory: Path) -> Path:
    candidates = [
        p for p in sorted(directory.iterdir()) if p.is_dir() and (p.name.endswith("covers") or p.name == "images")
    ]
    return candidates[0] if candidates else directory / "covers"


def read_microlens(directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    pairs_path = raw.single_file(directory, "*_pairs.tsv", "interaction file")
    titles_path = raw.single_file(directory, "*.csv", "titles CSV")
    problems: list[DatasetProblem] = []
    items = raw.ItemTable()
    # Undecodable lines become problems and empty lines, so the CSV reader's line numbers stay true.
    lines = (text + "\n" if text is not None else "\n" for _, text in raw.text_lines(titles_path, problems, encoding))
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header[:2]] != ["item_id", "title"]:
        raise DatasetError(f"{titles_path}:1: expected the header 'item_id,title', got {header}")
    for row in reader:
        if not row:
            continue
        if len(row) != 2:
            problems.append(
                at(
                    titles_path,
                    reader.line_num,
                    "wrong number of fields",
                    f"expected 2 fields (item_id, title), got {len(row)}",
                )
            )
            continue
        items.add(row[0], row[1], titles_path, reader.line_num, problems, on_error)
    raw.raise_if_problems(problems, str(titles_path), on_error)
    rows = (
        (line_number, user, item_ids)
        for line_number, (user, item_ids) in raw.tsv_rows(pairs_path, ("user", "item ids"), problems, encoding=encoding)
    )
    user_keys, sequences = raw.read_sequences(rows, pairs_path, items.index, titles_path.name, problems)
    raw.raise_if_problems(problems, str(pairs_path), on_error)
    # MicroLens keeps its pictures as covers: the image modality reads them from there.
    return assemble(directory, items, user_keys, sequences, problems, folders={"image": _covers_folder(directory)})


register_format(
    DatasetFormat(
        "microlens",
        read=read_microlens,
        description="*_pairs.tsv (user, item ids oldest first), titles CSV (item_id,title), *covers/<item_id>.jpg, "
        "optional video/ and audio/ <item_id>.npy",
    )
)
