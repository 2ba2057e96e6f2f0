"""`mmbench data inspect|import`: a dataset's figures and problems, and its one-time conversion."""

from __future__ import annotations

import codecs
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from benchmark.cli.app import app
from benchmark.cli.output import fail, note, print_json, say
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE
from benchmark.errors import DatasetProblems, MMBenchError
from benchmark.formats.importer import import_dataset, inspect_dataset
from benchmark.formats.registry import format_names


def _importable_formats() -> list[str]:
    try:
        return format_names(importable_only=True)
    except MMBenchError:  # a broken MMBENCH_PLUGINS: the command that reads a registry says so in one line
        return format_names(importable_only=True, plugins=False)


def check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise MMBenchError(f"--encoding: unknown text encoding '{encoding}' (e.g. utf-8, latin-1, cp1252)") from error


def write_problems(path: Path | None, problems: list[str]) -> None:
    if path is None:
        return
    try:
        path.write_text("".join(f"{problem}\n" for problem in problems), encoding="utf-8")
    except OSError as error:
        raise MMBenchError(f"--problems {path}: cannot write: {error.strerror or error}") from error


def more_problems(summary: dict[str, Any], problems_file: Path | None) -> list[str]:
    hidden = summary["count"] - len(summary["first"])
    if hidden <= 0:
        return []
    where = f"all in {problems_file}" if problems_file else "--json or --problems FILE lists them all"
    return [f"  ... and {hidden} more ({where})"]


data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets and import them into mmbench's layout.")
app.add_typer(data_app, name="data")


# The layouts `data inspect` and `data import` read: every registered format that reads a directory.
DataFormat = Enum("DataFormat", {name: name for name in _importable_formats()}, type=str)  # type: ignore[misc]
FORMAT_HELP = f"dataset layout: {', '.join(_importable_formats())}"


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


@data_app.command("inspect")
def data_inspect(
    path: Path = typer.Argument(..., help="dataset directory"),
    data_format: DataFormat = typer.Option(..., "--format", help=FORMAT_HELP),
    encoding: str = typer.Option("utf-8", "--encoding", help="text encoding of the dataset's files (e.g. latin-1)"),
    problems_file: Path | None = typer.Option(
        None, "--problems", help="write every problem found to this file, one per line"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Users, items, interactions, sequence lengths, items without text or image, and every problem found.

    Example: mmbench data inspect /data/Scientific --format amazon-iisan --problems problems.txt
    """
    try:
        check_encoding(encoding)
        report = inspect_dataset(path, data_format.value, encoding=encoding)
        write_problems(problems_file, report["problems"]["all"])
    except MMBenchError as error:
        fail(error)
    if as_json:
        print_json(report)
        _exit_if_unusable(report)
        return
    lengths = report["sequence_length"]
    lines = [
        f"{report['path']} ({report['format']})",
        f"users {report['users']}  items {report['items']}  interactions {report['interactions']}",
        f"sequence length: min {lengths['min']}  p25 {lengths['p25']:g}  median {lengths['median']:g}  p75 "
        f"{lengths['p75']:g}  "
        f"max {lengths['max']}  mean {lengths['mean']:.2f}",
        f"items without text {report['items_without_text']}  without image {report['items_without_image']}  "
        f"unreadable images {report['unreadable_images']}  optional media "
        f"{', '.join(report['optional_media']) or 'none'}",
        f"problems {report['problems']['count']}"
        + "".join(f"  {kind}: {count}" for kind, count in report["problems"]["by_kind"].items()),
        *[f"  {problem}" for problem in report["problems"]["first"]],
        *more_problems(report["problems"], problems_file),
    ]
    for line in lines:
        say(line)
    _exit_if_unusable(report)


def _exit_if_unusable(report: dict[str, Any]) -> None:
    """A dataset no suite can split is unusable input (exit 2); problems in some rows leave it usable (exit 0)."""
    if not report["usable"]:
        unusable = [p["text"] for p in report["problems"]["details"] if p["kind"] == "unusable dataset"]
        note(f"error: {unusable[0]}")
        raise typer.Exit(2)


@data_app.command("import")
def data_import(
    path: Path = typer.Argument(..., help="dataset directory"),
    data_format: DataFormat = typer.Option(..., "--format", help=FORMAT_HELP),
    out: Path = typer.Option(..., "--out", help="directory to create (format `mmbench` in suites)"),
    k_core: int = typer.Option(
        0,
        "--k-core",
        help="drop users and items with fewer interactions, repeatedly (default 0: off; "
        "published layouts are already filtered)",
    ),
    max_seq_len: int = typer.Option(
        10, "--max-seq-len", help="history length the suites will use (keeps the most recent items)"
    ),
    min_seq_len: int = typer.Option(
        MIN_SEQUENCE_LENGTH,
        "--min-seq-len",
        help=f"shorter sequences are problems (at least {MIN_SEQUENCE_LENGTH}: {RULE})",
    ),
    on_error: OnError = typer.Option(
        OnError.fail, "--on-error", help="skip bad rows with a summary, or fail writing nothing"
    ),
    verify_images: bool = typer.Option(False, "--verify-images", help="decode every image fully, not only its header"),
    copy_media: bool = typer.Option(False, "--copy-media", help="copy images and media instead of linking them"),
    force: bool = typer.Option(False, "--force", help="replace an earlier import at --out (never anything else)"),
    encoding: str = typer.Option("utf-8", "--encoding", help="text encoding of the dataset's files (e.g. latin-1)"),
    problems_file: Path | None = typer.Option(
        None, "--problems", help="write every problem found to this file, one per line"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Convert a dataset once: optional k-core filter, most-recent truncation, item id remap; never half-written.

    Example: mmbench data import /data/Scientific --format amazon-iisan --out /data/scientific-mm --on-error skip
    """
    try:
        check_encoding(encoding)
        summary = import_dataset(
            path, data_format.value, out, k_core, max_seq_len, min_seq_len, on_error.value, verify_images,
            copy_media, force, encoding,
        )  # fmt: skip
        write_problems(problems_file, summary["skipped"]["all"])
    except DatasetProblems as error:
        try:
            write_problems(problems_file, error.problems)
        except MMBenchError as write_error:
            note(f"error: {write_error}")
        fail(error)
    except MMBenchError as error:
        fail(error)
    for warning in summary["warnings"]:
        note(f"warning: {warning}")
    if as_json:
        print_json(summary)
        return
    for line in _import_lines(summary, path, out, k_core, problems_file):
        say(line)


def _import_lines(summary: dict[str, Any], path: Path, out: Path, k_core: int, problems_file: Path | None) -> list[str]:
    read, written, skipped, kept = summary["read"], summary["written"], summary["skipped"], summary["kept"]
    return [
        f"imported {path} -> {out} in {summary['seconds']:.1f} s (k-core {k_core})",
        f"read    users {read['users']}  items {read['items']}  interactions {read['interactions']}",
        f"written users {written['users']}  items {written['items']}  interactions {written['interactions']}",
        "kept    " + "  ".join(f"{what} {share:.1%}" for what, share in kept.items() if share is not None),
        f"skipped {skipped['count']} problem(s)" + "".join(f"  {k}: {c}" for k, c in skipped["by_kind"].items()),
        *[f"  {problem}" for problem in skipped["first"]],
        *more_problems(skipped, problems_file),
    ]
