"""A toy layout: history.txt with one user per line, `user: item item item`, and titles made from item ids."""

from pathlib import Path

from benchmark.data.raw import RawDataset, text_lines
from benchmark.formats.registry import DatasetFormat, register_format


def read_toy(directory: Path, on_error: str, encoding: str) -> RawDataset:
    problems: list[str] = []
    index: dict[str, int] = {}
    users, sequences = [], []
    for _, line in text_lines(directory / "history.txt", problems, encoding):
        if line and ":" in line:
            user, items = line.split(":", 1)
            users.append(user.strip())
            sequences.append([index.setdefault(key, len(index) + 1) for key in items.split()])
    keys = sorted(index, key=index.get)
    return RawDataset(str(directory), keys, [f"toy item {key}" for key in keys], users, sequences)


register_format(DatasetFormat("toy", read=read_toy, description="one user per line: `user: item item item`"))
