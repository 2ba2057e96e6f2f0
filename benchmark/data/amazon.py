"""Reader for the amazon-iisan layout: items.tsv, users.tsv, images/<item_id>.jpg."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from benchmark.errors import DatasetError

MAX_LISTED_PROBLEMS = 10


@dataclass
class RawDataset:
    """Items and user sequences with internal ids 1..n_items (0 is padding)."""

    source: str
    item_keys: list[str]  # external id of internal item i+1
    titles: list[str]
    image_paths: list[Path | None]
    user_keys: list[str]
    sequences: list[list[int]]

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    def fingerprint(self) -> str:
        """Identity of the item content (ids, titles, image files) that hidden-state caches key on."""
        digest = hashlib.sha256()
        for key, title, image in zip(self.item_keys, self.titles, self.image_paths):
            stat = image.stat() if image is not None else None
            digest.update(f"{key}\t{title}\t{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}\n".encode())
        return digest.hexdigest()[:16]


def _raise_if_problems(problems: list[str], what: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DatasetError(f"{len(problems)} problem(s) in {what}:\n  {shown}{more}")


def tsv_rows(path: Path, columns: tuple[str, ...], problems: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line with exactly len(columns) tab-separated fields;
    other lines become problems naming file and line."""
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(columns):
                problems.append(f"{path}:{line_number}: expected {len(columns)} tab-separated fields ({', '.join(columns)}), got {len(fields)}")
                continue
            yield line_number, fields


def read_amazon_iisan(directory: Path) -> RawDataset:
    items_path, users_path, image_dir = directory / "items.tsv", directory / "users.tsv", directory / "images"
    for required in (items_path, users_path):
        if not required.is_file():
            raise DatasetError(f"{directory}: missing {required.name} (amazon-iisan layout: items.tsv, users.tsv, images/)")
    problems: list[str] = []
    item_index: dict[str, int] = {}
    item_keys: list[str] = []
    titles: list[str] = []
    for line_number, (key, title) in tsv_rows(items_path, ("item_id", "title"), problems):
        key, title = key.strip(), title.strip()
        if key in item_index:
            problems.append(f"{items_path}:{line_number}: duplicate item id '{key}'")
            continue
        if not title:
            problems.append(f"{items_path}:{line_number}: empty title for item '{key}'")
        item_index[key] = len(item_keys) + 1
        item_keys.append(key)
        titles.append(title)
    _raise_if_problems(problems, str(items_path))
    user_keys: list[str] = []
    sequences: list[list[int]] = []
    for line_number, (user, items) in tsv_rows(users_path, ("user_id", "item ids"), problems):
        sequence = []
        for key in items.split():
            if key not in item_index:
                problems.append(f"{users_path}:{line_number}: unknown item id '{key}' (not in items.tsv)")
                continue
            sequence.append(item_index[key])
        user_keys.append(user.strip())
        sequences.append(sequence)
    _raise_if_problems(problems, str(users_path))
    image_paths: list[Path | None] = []
    for key in item_keys:
        path = image_dir / f"{key}.jpg"
        image_paths.append(path if path.is_file() else None)
    return RawDataset(str(directory), item_keys, titles, image_paths, user_keys, sequences)
