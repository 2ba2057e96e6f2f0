"""The output of `mmbench data import`: the amazon-iisan layout (filtered, truncated, remapped) plus its manifest."""

from __future__ import annotations

from pathlib import Path

from benchmark.data.raw import RawDataset
from benchmark.errors import DatasetError
from benchmark.formats.amazon_iisan import read_amazon_iisan
from benchmark.formats.registry import DatasetFormat, register_format

IMPORT_MANIFEST = "manifest.json"


def read_imported(directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    if not (directory / IMPORT_MANIFEST).is_file():
        raise DatasetError(f"{directory}: no {IMPORT_MANIFEST}; this is not the output of `mmbench data import`")
    return read_amazon_iisan(directory, on_error, encoding)


register_format(
    DatasetFormat(
        "mmbench",
        read=read_imported,
        description="the output of `mmbench data import`: filtered, truncated, remapped, ready to split",
    )
)
