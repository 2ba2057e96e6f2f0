"""The amazon-iisan layout: items.tsv (item_id<TAB>title), users.tsv (user_id<TAB>item ids, oldest first),
images/<item_id>.jpg (or images.lmdb), optional video/ and audio/ <item_id>.npy."""

from __future__ import annotations

from pathlib import Path

from benchmark.data import raw
from benchmark.data.problems import DatasetProblem
from benchmark.data.raw import RawDataset
from benchmark.errors import DatasetError
from benchmark.formats.assemble import assemble
from benchmark.formats.registry import DatasetFormat, register_format


def read_amazon_iisan(directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    items_path, users_path = directory / "items.tsv", directory / "users.tsv"
    for required in (items_path, users_path):
        if not required.is_file():
            raise DatasetError(
                f"{directory}: missing {required.name} (amazon-iisan layout: items.tsv, users.tsv, images/)"
            )
    problems: list[DatasetProblem] = []
    items = raw.ItemTable()
    for line_number, (key, title) in raw.tsv_rows(items_path, ("item_id", "title"), problems, encoding=encoding):
        items.add(key, title, items_path, line_number, problems, on_error)
    raw.raise_if_problems(problems, str(items_path), on_error)
    rows = (
        (line_number, user, item_ids)
        for line_number, (user, item_ids) in raw.tsv_rows(
            users_path, ("user_id", "item ids"), problems, encoding=encoding
        )
    )
    user_keys, sequences = raw.read_sequences(rows, users_path, items.index, "items.tsv", problems)
    raw.raise_if_problems(problems, str(users_path), on_error)
    return assemble(directory, items, user_keys, sequences, problems)


register_format(
    DatasetFormat(
        "amazon-iisan",
        read=read_amazon_iisan,
        description="items.tsv (item_id, title), users.tsv (user_id, item ids oldest first), images/<item_id>.jpg",
    )
)
