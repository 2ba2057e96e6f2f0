"""A dataset as read from disk (`RawDataset`), and the line readers every format shares: decoded text lines,
TSV rows, an item table, sequences of item ids, media files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.data.problems import DatasetProblem, at, summarise
from benchmark.errors import DatasetError

MAX_LISTED_PROBLEMS = 10


@dataclass
class RawDataset:
    """Items and user sequences with internal ids 1..n_items (0 is padding)."""

    source: str
    item_keys: list[str]  # external id of internal item i+1
    titles: list[str]
    user_keys: list[str]
    sequences: list[list[int]]
    # Per modality whose folder the dataset has: each item's file in it (a picture, a .npy clip or spectrogram), or
    # None where the item has none.
    media: dict[str, list[Path | None]] = field(default_factory=dict)
    # Per modality that reads files: the folder they were looked for in (named in "missing file" problems).
    media_folders: dict[str, Path] = field(default_factory=dict)
    # Per modality stored in one file instead of a folder (an LMDB: key item id, value the file's bytes).
    media_stores: dict[str, Path] = field(default_factory=dict)
    problems: list[DatasetProblem] = field(default_factory=list)  # rows skipped under on_error="skip"

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    def fingerprint(self) -> str:
        """Identity of the item content (ids, titles, media files) that hidden-state caches key on."""
        digest = hashlib.sha256()
        media = [self.media[name] for name in sorted(self.media)]
        for index, (key, title) in enumerate(zip(self.item_keys, self.titles)):
            stamps = []
            for paths in media:
                path = paths[index]
                stat = path.stat() if path is not None else None
                stamps.append(f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-")
            digest.update(f"{key}\t{title}\t{' '.join(stamps)}\n".encode())
        for name in sorted(self.media_stores):
            for file in sorted(self.media_stores[name].glob("*.mdb")):
                digest.update(f"{file.name}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode())
        return digest.hexdigest()[:16]

    def media_paths(self, modality: str) -> list[Path | None]:
        return self.media.get(modality, [None] * self.n_items)

    def has_media(self, modality: str) -> bool:
        """Whether the dataset holds any file of `modality` (in its folder or its store)."""
        return modality in self.media_stores or any(path is not None for path in self.media_paths(modality))


def require_media(raw: RawDataset, modality: str, where: str) -> list[Path]:
    paths = raw.media_paths(modality)
    missing = [raw.item_keys[i] for i, path in enumerate(paths) if path is None]
    if missing:
        listed = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DatasetError(
            f"{raw.source}: {len(missing)} of {raw.n_items} items have no {modality} in {where} ({listed})"
        )
    return paths  # type: ignore[return-value]


def raise_if_problems(problems: list[DatasetProblem], what: str, on_error: str = "fail") -> None:
    """Stop with every problem listed, unless the caller chose to skip bad rows (then they are kept for the summary)."""
    if problems and on_error == "fail":
        raise DatasetError(f"{len(problems)} problem(s) in {what}:\n{summarise(problems, MAX_LISTED_PROBLEMS)}")


def text_lines(path: Path, problems: list[DatasetProblem], encoding: str = "utf-8") -> Iterator[tuple[int, str | None]]:
    """(line number, text without its line end) of every line; a line that does not decode becomes a problem
    naming file, line and byte offset, and comes back as None so line numbers stay true.

    Lines are split on b"\\n" before decoding: right for UTF-8 and single-byte encodings (latin-1, cp1252).
    """
    offset = 0
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                text: str | None = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as error:
                problems.append(
                    at(
                        path,
                        line_number,
                        "undecodable text",
                        f"byte {offset + error.start}: not valid {encoding} ({error.reason}); "
                        "name the file's encoding with --encoding or the dataset's `encoding:` (e.g. latin-1)",
                    )
                )
                text = None
            offset += len(raw)
            yield line_number, text


def tsv_rows(
    path: Path, columns: tuple[str, ...], problems: list[DatasetProblem], skip_lines: int = 0, encoding: str = "utf-8"
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line with exactly len(columns) tab-separated fields;
    other lines (and lines that do not decode) become problems naming file and line."""
    for line_number, line in text_lines(path, problems, encoding):
        if line is None or line_number <= skip_lines or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            expected = f"expected {len(columns)} tab-separated fields ({', '.join(columns)}), got {len(fields)}"
            problems.append(at(path, line_number, "wrong number of fields", expected))
            continue
        yield line_number, fields


class ItemTable:
    """Items in file order with internal ids 1..n; duplicates and empty titles become problems."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.keys: list[str] = []
        self.titles: list[str] = []

    def add(self, key: str, title: str, path: Path, line: int, problems: list[DatasetProblem], on_error: str) -> None:
        key, title = key.strip(), title.strip()
        if key in self.index:
            problems.append(at(path, line, "duplicate item id", f"duplicate item id '{key}'", key))
            return
        if not title:
            problems.append(at(path, line, "empty title", f"empty title for item '{key}'", key))
            if on_error == "skip":
                return  # the item goes; sequences that mention it count it as unknown
        self.index[key] = len(self.keys) + 1
        self.keys.append(key)
        self.titles.append(title)


def read_sequences(
    rows: Iterator[tuple[int, str, str]],
    path: Path,
    item_index: dict[str, int],
    items_file: str,
    problems: list[DatasetProblem],
) -> tuple[list[str], list[list[int]]]:
    """(user keys, sequences of internal ids) from (line number, user, space-separated item ids) rows."""
    user_keys: list[str] = []
    sequences: list[list[int]] = []
    for line_number, user, item_ids in rows:
        sequence = []
        for key in item_ids.split():
            if key not in item_index:
                problems.append(
                    at(path, line_number, "unknown item id", f"unknown item id '{key}' (not in {items_file})", key)
                )
                continue
            sequence.append(item_index[key])
        user_keys.append(user.strip())
        sequences.append(sequence)
    return user_keys, sequences


def media_files(folder: Path, item_keys: list[str], suffix: str) -> list[Path | None]:
    """`folder/<item_id><suffix>` per item, None where missing (counted and reported when a tower needs it)."""
    present = {path.name for path in folder.iterdir()} if folder.is_dir() else set()
    return [folder / f"{key}{suffix}" if f"{key}{suffix}" in present else None for key in item_keys]


def single_file(directory: Path, pattern: str, what: str) -> Path:
    """The one file in `directory` matching `pattern`; none or several is an error naming what was found."""
    matches = sorted(directory.glob(pattern))
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches) or "none"
        raise DatasetError(f"{directory}: expected exactly one {what} ({pattern}), found {found}")
    return matches[0]
