"""Dataset format name -> reader of its on-disk layout."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from benchmark.data.amazon import RawDataset, read_amazon_iisan
from benchmark.data.microlens import read_microlens
from benchmark.data.recbole import read_recbole
from benchmark.errors import DatasetError

IMPORT_MANIFEST = "manifest.json"


def read_imported(directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    """An `mmbench data import` output: the amazon-iisan layout plus its manifest."""
    if not (directory / IMPORT_MANIFEST).is_file():
        raise DatasetError(f"{directory}: no {IMPORT_MANIFEST}; this is not the output of `mmbench data import`")
    return read_amazon_iisan(directory, on_error, encoding)


READERS: dict[str, Callable[..., RawDataset]] = {
    "amazon-iisan": read_amazon_iisan,
    "microlens": read_microlens,
    "recbole": read_recbole,
    "mmbench": read_imported,
}


def read_dataset(data_format: str, directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    if data_format not in READERS:
        raise DatasetError(f"no reader for dataset format '{data_format}' (readers: {', '.join(READERS)})")
    if not directory.is_dir():
        raise DatasetError(f"dataset directory not found: {directory}")
    return READERS[data_format](directory, on_error, encoding)
