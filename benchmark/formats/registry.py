"""The dataset-format registry: a format is one module in benchmark/formats that registers itself.

A format says how to read its on-disk layout into a `RawDataset`, whether a suite names a `path`
for it, its options (name -> default) and whether `mmbench data import` reads it. Formats from
outside the package register the same way from a module named in MMBENCH_PLUGINS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import DatasetError
from benchmark.registry import Registry
from benchmark.suite.config import DatasetConfig

if TYPE_CHECKING:
    from benchmark.data.raw import RawDataset

Reader = Callable[[Path, str, str], "RawDataset"]  # (directory, on_error "fail" | "skip", text encoding)


@dataclass(frozen=True)
class PredictedData:
    """What a generated format's options decide about its data, known without generating it (`validate` checks a
    suite against it)."""

    users: int  # one sequence per user
    items: int
    longest: int  # items in the longest user sequence
    media: tuple[str, ...]  # the modalities it generates one file per item for
    problems: tuple[tuple[str, str], ...] = ()  # (option, message): the data would be unusable
    warnings: tuple[tuple[str, str], ...] = ()  # (option, message)
    missing_media_hint: str = ""  # how to ask for a modality it does not generate ("{modality}" filled in)
    mean_length: float | None = None  # items in a user sequence on average, where the options tell


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    read: Reader
    description: str = ""
    needs_path: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    # Generated formats (synthetic) make their directory from the options instead of reading a path.
    generate: Callable[[dict[str, Any]], Path] | None = None
    importable: bool = True  # `mmbench data import --format` accepts it
    # A generated format's data, from its options alone (None: the data must be read to be known).
    predict: Callable[[dict[str, Any]], PredictedData] | None = None
    # A generated format's: whether the data its options make exists already (reading it then costs little), and
    # the options of a small copy whose items have the same files (what `mmbench estimate` reads the shape of an
    # item's features from without generating every item).
    generated: Callable[[dict[str, Any]], bool] | None = None
    small_copy: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def load(self, dataset: DatasetConfig, on_error: str = "fail") -> RawDataset:
        """Read the dataset a suite entry names."""
        if self.generate is not None:
            return self.read(self.generate({**self.options, **dataset.options}), on_error, dataset.encoding)
        if dataset.path is None:
            raise DatasetError(f"dataset '{dataset.name}' (format {self.name}) has no path")
        return read_dataset(self.name, Path(dataset.path), on_error, dataset.encoding)


FORMATS: Registry[DatasetFormat] = Registry("dataset format", package="benchmark.formats")


def register_format(data_format: DatasetFormat) -> DatasetFormat:
    return FORMATS.register(data_format.name, data_format)


def format_names(importable_only: bool = False, plugins: bool = True) -> list[str]:
    return [f.name for f in FORMATS.entries(plugins) if f.importable or not importable_only]


def get_format(name: str) -> DatasetFormat:
    return FORMATS.get(name)


def read_dataset(data_format: str, directory: Path, on_error: str = "fail", encoding: str = "utf-8") -> RawDataset:
    """Read a directory in a format's layout (`mmbench data inspect/import` and suites with a path)."""
    reader = get_format(data_format)
    if not directory.is_dir():
        raise DatasetError(f"dataset directory not found: {directory}")
    return reader.read(directory, on_error, encoding)


def load_raw_dataset(dataset_config: DatasetConfig | dict[str, Any]) -> RawDataset:
    """The dataset a suite entry names (a dict is taken as the entry's keys, for tests and tools)."""
    if isinstance(dataset_config, dict):
        dataset_config = DatasetConfig(
            **{"name": Path(str(dataset_config.get("path") or "dataset")).name, **dataset_config}
        )
    return get_format(dataset_config.format).load(dataset_config)
