"""`mmbench data inspect` and `mmbench data import`: look at a dataset, and convert it once into the
internal layout (k-core filter, most-recent truncation, item id remap, ready for the leave-one-out
split) so every later run starts fast. An import writes into a staging directory and renames it
into place at the end: a failed or killed import never leaves a half-written dataset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.atomic import atomic_directory
from benchmark.data.problems import DatasetProblem, counts_by_kind, summarise
from benchmark.data.raw import RawDataset
from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH, RULE, too_short, unusable, usable_users
from benchmark.errors import DatasetError, DatasetProblems
from benchmark.formats.import_layout import write_layout
from benchmark.formats.mmbench import IMPORT_MANIFEST
from benchmark.formats.registry import read_dataset
from benchmark.modalities.media import IMAGE, check_images
from benchmark.modalities.registry import get_modality

MAX_LISTED = 20  # problems shown on a terminal; --json and --problems FILE carry all of them
DROP_WARNING = 0.10  # warn when an import drops more than this share of the users


def _summarise_problems(problems: list[DatasetProblem]) -> dict[str, Any]:
    """For the CLI and --json: counts by kind, the first ones as text, every one as text and as fields."""
    return {
        "count": len(problems),
        "by_kind": counts_by_kind(problems),
        "first": [str(p) for p in problems[:MAX_LISTED]],
        "all": [str(p) for p in problems],
        "details": [p.as_dict() for p in problems],
    }


def _length_distribution(sequences: list[list[int]]) -> dict[str, float]:
    lengths = np.asarray([len(s) for s in sequences] or [0])
    return {
        "min": int(lengths.min()),
        "p25": float(np.percentile(lengths, 25)),
        "median": float(np.median(lengths)),
        "p75": float(np.percentile(lengths, 75)),
        "max": int(lengths.max()),
        "mean": float(lengths.mean()),
    }


def inspect_dataset(path: Path, data_format: str, check_media: bool = True, encoding: str = "utf-8") -> dict[str, Any]:
    """What `data inspect` reports. `usable` is False (and a problem says why) for a dataset no suite can split:
    empty, or without a user of MIN_SEQUENCE_LENGTH items."""
    raw = read_dataset(data_format, path, "skip", encoding)
    problems = list(raw.problems)
    # Pictures get a header read (the import drops items whose picture is missing or unreadable); every other
    # modality the dataset has a folder of: is each item's file there.
    has_images = raw.has_media(IMAGE)
    if check_media and has_images:
        problems += check_images(raw, verify=False)
    if check_media:
        for modality in sorted(set(raw.media) - {IMAGE}):
            problems += get_modality(modality).media_problems(raw, decode=False)
    problems += [
        too_short(user, len(sequence))
        for user, sequence in zip(raw.user_keys, raw.sequences)
        if len(sequence) < MIN_SEQUENCE_LENGTH
    ]
    unusable_reason = unusable(str(path), raw.sequences)
    if unusable_reason is not None:
        problems.append(DatasetProblem("unusable dataset", unusable_reason))
    kinds = counts_by_kind(problems)
    return {
        "path": str(path),
        "format": data_format,
        "usable": unusable_reason is None,
        "usable_users": usable_users(raw.sequences),
        "users": len(raw.sequences),
        "items": raw.n_items,
        "interactions": int(sum(len(s) for s in raw.sequences)),
        "sequence_length": _length_distribution(raw.sequences),
        "items_without_text": kinds.get("empty title", 0),
        "items_without_image": kinds.get("no image", 0) if has_images else raw.n_items,
        "unreadable_images": kinds.get("unreadable image", 0),
        "optional_media": sorted(set(raw.media) - {IMAGE}),
        "problems": _summarise_problems(problems),
    }


def k_core(users: list[tuple[str, np.ndarray]], n_items: int, k: int) -> list[tuple[str, np.ndarray]]:
    """Drop users and items with fewer than k interactions, repeatedly, until none remain."""
    if k <= 1:
        return users
    while True:
        flat = np.concatenate([s for _, s in users]) if users else np.zeros(0, dtype=np.int64)
        keep_item = np.bincount(flat, minlength=n_items + 1) >= k
        filtered = [(user, s[keep_item[s]]) for user, s in users]
        filtered = [(user, s) for user, s in filtered if len(s) >= k]
        if sum(len(s) for _, s in filtered) == len(flat):
            return filtered
        users = filtered


def check_output_location(source: Path, out: Path, force: bool) -> None:
    """Refuse an output that would overwrite or live inside the source (or hold it), and never replace what is not an
    import."""
    source_real, out_real = source.resolve(), out.resolve()
    if out_real == source_real:
        raise DatasetError(f"--out {out} is the source directory itself; choose a new directory")
    if source_real in out_real.parents:
        raise DatasetError(f"--out {out} is inside the source {source} ({out_real}); choose a directory outside it")
    if out_real in source_real.parents:
        raise DatasetError(f"--out {out} contains the source {source} ({source_real}); choose a directory outside it")
    if out.exists() or out.is_symlink():
        if not force:
            raise DatasetError(f"{out} already exists (use --force to replace an earlier import)")
        if not (out / IMPORT_MANIFEST).is_file():
            raise DatasetError(
                f"{out} exists and is not an `mmbench data import` output (no {IMPORT_MANIFEST}): "
                "--force only replaces an earlier import, never other files"
            )


def import_dataset(
    source: Path,
    data_format: str,
    out: Path,
    k: int = 0,
    max_seq_len: int = 10,
    min_seq_len: int = MIN_SEQUENCE_LENGTH,
    on_error: str = "fail",
    verify_images: bool = False,
    copy_media: bool = False,
    force: bool = False,
    encoding: str = "utf-8",
) -> dict[str, Any]:
    """Read `source`, check it, keep what a suite can use, renumber its items and write the layout at `out` (whole or
    not at all); returns the summary, which the import also writes as its manifest."""
    started = time.perf_counter()
    if min_seq_len < MIN_SEQUENCE_LENGTH:
        # Shorter users would be written only for every suite to drop them.
        raise DatasetError(f"--min-seq-len {min_seq_len} is below the rule: {RULE}")
    check_output_location(source, out, force)
    raw = read_dataset(data_format, source, on_error, encoding)
    problems, bad = _problems_and_bad_items(raw, verify_images, min_seq_len)
    if problems and on_error == "fail":
        kinds = ", ".join(f"{kind}: {count}" for kind, count in counts_by_kind(problems).items())
        raise DatasetProblems(
            f"{len(problems)} problem(s) in {source} ({kinds}; nothing was written; --on-error skip drops the bad "
            f"rows; --problems FILE writes them all):\n{summarise(problems, MAX_LISTED)}",
            [str(p) for p in problems],
        )
    users = _kept_users(raw, bad, k, max_seq_len, min_seq_len)
    sequences = [s for _, s in users]
    if not sequences:
        raise DatasetError(f"{source}: no user is left after filtering (k-core {k}, minimum length {min_seq_len})")
    kept_items = np.unique(np.concatenate(sequences))
    new_id = np.zeros(raw.n_items + 1, dtype=np.int64)
    new_id[kept_items] = np.arange(1, len(kept_items) + 1)
    options = {"k_core": k, "max_seq_len": max_seq_len, "min_seq_len": min_seq_len, "on_error": on_error}
    summary = _import_summary(source, data_format, out, options, raw, sequences, kept_items, problems)
    try:
        # An earlier import at `out` is replaced (check_output_location refused anything else).
        with atomic_directory(out, replace=True, prefix=f".{out.name}.importing-") as staging:
            write_layout(staging, raw, kept_items, new_id, users, copy_media)
            summary["seconds"] = time.perf_counter() - started
            (staging / IMPORT_MANIFEST).write_text(json.dumps(summary, indent=2))
    except OSError as error:
        raise DatasetError(
            f"cannot write the import to {out}: {error.strerror or error} (nothing was written)"
        ) from error
    return summary


def _problems_and_bad_items(
    raw: RawDataset, verify_images: bool, min_seq_len: int
) -> tuple[list[DatasetProblem], np.ndarray]:
    """Every problem of the dataset (as read, its images, users shorter than `min_seq_len`), and a mask over the item
    ids (row 0: padding) of the items whose image is missing or unreadable."""
    problems = list(raw.problems)
    has_images = raw.has_media(IMAGE)
    bad = np.zeros(raw.n_items + 1, dtype=bool)
    if has_images:
        image_problems = check_images(raw, verify_images)
        problems += image_problems
        index = {key: position + 1 for position, key in enumerate(raw.item_keys)}
        for problem in image_problems:
            if problem.item is not None:
                bad[index[problem.item]] = True
    for user, sequence in zip(raw.user_keys, raw.sequences):
        if len(sequence) < min_seq_len:
            problems.append(too_short(user, len(sequence), min_seq_len))
    return problems, bad


def _kept_users(
    raw: RawDataset, bad: np.ndarray, k: int, max_seq_len: int, min_seq_len: int
) -> list[tuple[str, np.ndarray]]:
    """The users an import writes, each with the items it keeps: long enough, without bad items, k-core filtered,
    truncated to what the split reads."""
    users = [
        (user, np.asarray(s, dtype=np.int64)) for user, s in zip(raw.user_keys, raw.sequences) if len(s) >= min_seq_len
    ]
    users = [(user, s[~bad[s]]) for user, s in users]
    # k-core is off by default: the layouts mmbench reads are published already filtered (IISAN's Amazon files are).
    users = k_core([(user, s) for user, s in users if len(s) >= min_seq_len], raw.n_items, k)
    # Keep what the leave-one-out split reads: the last max_seq_len + 1 training items, then valid and test.
    return [(user, s[-(max_seq_len + 3) :]) for user, s in users if len(s) >= min_seq_len]


def _import_summary(
    source: Path,
    data_format: str,
    out: Path,
    options: dict[str, Any],
    raw: RawDataset,
    sequences: list[np.ndarray],
    kept_items: np.ndarray,
    problems: list[DatasetProblem],
) -> dict[str, Any]:
    """What an import read and wrote, the share of each it kept, a warning when it dropped many users, the problems
    it skipped; `seconds` is filled in once the layout is written."""
    read = {"users": len(raw.sequences), "items": raw.n_items, "interactions": int(sum(len(s) for s in raw.sequences))}
    written: dict[str, Any] = {
        "users": len(sequences),
        "items": int(len(kept_items)),
        "interactions": int(sum(len(s) for s in sequences)),
        "split": {"train_sequences": usable_users(sequences), "valid": len(sequences), "test": len(sequences)},
    }
    kept = {what: written[what] / read[what] if read[what] else None for what in ("users", "items", "interactions")}
    warnings: list[str] = []
    if kept["users"] is not None and kept["users"] < 1.0 - DROP_WARNING:
        warnings.append(
            f"dropped {1 - kept['users']:.1%} of the users ({len(raw.sequences) - len(sequences)} of "
            f"{len(raw.sequences)}): "
            f"check --k-core ({options['k_core']}), --min-seq-len ({options['min_seq_len']}) and the problems listed"
        )
    return {
        "source": str(source),
        "format": data_format,
        "out": str(out),
        "options": options,
        "read": read,
        "written": written,
        "kept": kept,
        "warnings": warnings,
        "skipped": _summarise_problems(problems),
        "seconds": None,
    }
