"""Reader for the MicroLens layout: `*_pairs.tsv` (user<TAB>item ids oldest first), a titles CSV
(`item_id,title`, with header), covers as `<item_id>.jpg` in a `*covers` folder, and optional
`video/<item_id>.npy` (uint8 [frames, 3, size, size]) and `audio/<item_id>.npy` ([frames, mel bins])
arrays for the video and audio towers (decode the raw media to these arrays once, beforehand)."""

from __future__ import annotations

import csv
from pathlib import Path

from benchmark.data.amazon import RawDataset, media_files, raise_if_problems, tsv_rows
from benchmark.errors import DatasetError


def _one(directory: Path, pattern: str, what: str) -> Path:
    matches = sorted(directory.glob(pattern))
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches) or "none"
        raise DatasetError(f"{directory}: expected exactly one {what} ({pattern}), found {found}")
    return matches[0]


def _covers_folder(directory: Path) -> Path:
    candidates = [p for p in sorted(directory.iterdir()) if p.is_dir() and (p.name.endswith("covers") or p.name == "images")]
    return candidates[0] if candidates else directory / "covers"


def read_microlens(directory: Path) -> RawDataset:
    pairs_path = _one(directory, "*_pairs.tsv", "interaction file")
    titles_path = _one(directory, "*.csv", "titles CSV")
    problems: list[str] = []
    item_index: dict[str, int] = {}
    item_keys: list[str] = []
    titles: list[str] = []
    with open(titles_path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["item_id", "title"]:
            raise DatasetError(f"{titles_path}:1: expected the header 'item_id,title', got {header}")
        for row in reader:
            line_number = reader.line_num
            if not row:
                continue
            if len(row) != 2:
                problems.append(f"{titles_path}:{line_number}: expected 2 fields (item_id, title), got {len(row)}")
                continue
            key, title = row[0].strip(), row[1].strip()
            if key in item_index:
                problems.append(f"{titles_path}:{line_number}: duplicate item id '{key}'")
                continue
            if not title:
                problems.append(f"{titles_path}:{line_number}: empty title for item '{key}'")
            item_index[key] = len(item_keys) + 1
            item_keys.append(key)
            titles.append(title)
    raise_if_problems(problems, str(titles_path))
    user_keys: list[str] = []
    sequences: list[list[int]] = []
    for line_number, (user, items) in tsv_rows(pairs_path, ("user", "item ids"), problems):
        sequence = []
        for key in items.split():
            if key not in item_index:
                problems.append(f"{pairs_path}:{line_number}: unknown item id '{key}' (not in {titles_path.name})")
                continue
            sequence.append(item_index[key])
        user_keys.append(user.strip())
        sequences.append(sequence)
    raise_if_problems(problems, str(pairs_path))
    extra = {m: media_files(directory / m, item_keys, ".npy") for m in ("video", "audio") if (directory / m).is_dir()}
    return RawDataset(str(directory), item_keys, titles, media_files(_covers_folder(directory), item_keys, ".jpg"),
                      user_keys, sequences, extra)
