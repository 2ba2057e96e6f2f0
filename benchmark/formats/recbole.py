"""Reader for RecBole atomic files: `<name>.inter` (`user_id:token item_id:token timestamp:float`, tab-separated,
with a typed header) and `<name>.item` (`item_id:token` and a title column), optional `images/<item_id>.jpg`
(or `images.lmdb`).
Each user's interactions are sorted by timestamp, ties kept in file order (a stable sort)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, overload

from benchmark.data.problems import DatasetProblem, at
from benchmark.data.raw import (
    ItemTable,
    RawDataset,
    raise_if_problems,
    single_file,
    text_lines,
    tsv_rows,
)
from benchmark.errors import DatasetError
from benchmark.formats.assemble import assemble
from benchmark.formats.registry import DatasetFormat, register_format

TITLE_COLUMNS = ("title", "item_title", "movie_title", "name")


def _header(path: Path, encoding: str) -> list[str]:
    """Column names of an atomic file's typed header (`name:type` per column)."""
    problems: list[DatasetProblem] = []
    first = next(text_lines(path, problems, encoding), (1, ""))[1]
    if first is None:
        raise DatasetError(str(problems[0]))
    return [column.split(":", 1)[0].strip() for column in first.split("\t")]


@overload
def _column(names: list[str], wanted: tuple[str, ...], path: Path, required: Literal[True] = True) -> int: ...


@overload
def _column(names: list[str], wanted: tuple[str, ...], path: Path, required: bool) -> int | None: ...


def _column(names: list[str], wanted: tuple[str, ...], path: Path, required: bool = True) -> int | None:
    for name in wanted:
        if name in names:
            return names.index(name)
    if required:
        raise DatasetError(f"{path}:1: header has no {' or '.join(wanted)} column (columns: {', '.join(names)})")
    return None


def read_recbole(directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    inter_path = single_file(directory, "*.inter", "interaction file")
    item_path = single_file(directory, "*.item", "item file")
    problems: list[DatasetProblem] = []
    items = ItemTable()
    names = _header(item_path, encoding)
    id_column = _column(names, ("item_id",), item_path)
    title_column = _column(names, TITLE_COLUMNS, item_path)
    for line_number, fields in tsv_rows(item_path, tuple(names), problems, skip_lines=1, encoding=encoding):
        items.add(fields[id_column], fields[title_column], item_path, line_number, problems, on_error)
    raise_if_problems(problems, str(item_path), on_error)
    names = _header(inter_path, encoding)
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    user_column = _column(names, ("user_id",), inter_path)
    item_column = _column(names, ("item_id",), inter_path)
    time_column = _column(names, ("timestamp",), inter_path, required=False)
    for line_number, fields in tsv_rows(inter_path, tuple(names), problems, skip_lines=1, encoding=encoding):
        if time_column is None:
            timestamp = 0.0
        else:
            try:
                timestamp = float(fields[time_column])
            except ValueError:
                problems.append(
                    at(inter_path, line_number, "not a number", f"timestamp '{fields[time_column]}' is not a number")
                )
                continue
        per_user.setdefault(fields[user_column].strip(), []).append(
            (timestamp, line_number, fields[item_column].strip())
        )
    # One sequence per user, oldest first; ties keep file order. Unknown items are reported at their own line.
    user_keys: list[str] = []
    sequences: list[list[int]] = []
    for user, interactions in per_user.items():
        interactions.sort(key=lambda entry: (entry[0], entry[1]))
        sequence = []
        for _, line_number, key in interactions:
            if key not in items.index:
                problems.append(
                    at(
                        inter_path,
                        line_number,
                        "unknown item id",
                        f"unknown item id '{key}' (not in {item_path.name})",
                        key,
                    )
                )
                continue
            sequence.append(items.index[key])
        user_keys.append(user)
        sequences.append(sequence)
    raise_if_problems(problems, str(inter_path), on_error)
    return assemble(directory, items, user_keys, sequences, problems)


register_format(
    DatasetFormat(
        "recbole",
        read=read_recbole,
        description="RecBole atomic files: <name>.inter (user_id, item_id, timestamp) and "
        "<name>.item (item_id, title), "
        "optional images/<item_id>.jpg",
    )
)
