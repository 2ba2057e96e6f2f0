"""Reader for the amazon-iisan layout: items.tsv, users.tsv, images/<item_id>.jpg."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
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
    # Optional modalities: per item a .npy clip (uint8 [frames, 3, s, s]) / spectrogram ([frames, mels]), or None.
    extra_paths: dict[str, list[Path | None]] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    def fingerprint(self) -> str:
        """Identity of the item content (ids, titles, image files) that hidden-state caches key on."""
        digest = hashlib.sha256()
        media = [self.image_paths] + [self.extra_paths[name] for name in sorted(self.extra_paths)]
        for index, (key, title) in enumerate(zip(self.item_keys, self.titles)):
            stamps = []
            for paths in media:
                stat = paths[index].stat() if paths[index] is not None else None
                stamps.append(f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-")
            digest.update(f"{key}\t{title}\t{' '.join(stamps)}\n".encode())
        return digest.hexdigest()[:16]

    def media_paths(self, modality: str) -> list[Path | None]:
        return self.image_paths if modality == "image" else self.extra_paths.get(modality, [None] * self.n_items)


def raise_if_problems(problems: list[str], what: str) -> None:
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
    raise_if_problems(problems, str(items_path))
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
    raise_if_problems(problems, str(users_path))
    return RawDataset(str(directory), item_keys, titles, media_files(image_dir, item_keys, ".jpg"), user_keys, sequences,
                      {modality: media_files(directory / modality, item_keys, ".npy") for modality in ("video", "audio")
                       if (directory / modality).is_dir()})


def media_files(folder: Path, item_keys: list[str], suffix: str) -> list[Path | None]:
    """`folder/<item_id><suffix>` per item, None where missing (counted and reported when a tower needs it)."""
    present = {path.name for path in folder.iterdir()} if folder.is_dir() else set()
    return [folder / f"{key}{suffix}" if f"{key}{suffix}" in present else None for key in item_keys]
