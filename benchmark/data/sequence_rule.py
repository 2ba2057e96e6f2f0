"""The one rule for how long a user's sequence must be, shared by the leave-one-out split, `data import`,
`data inspect`, `validate` and the README.

Leave-one-out holds out a user's last item (test) and the one before it (validation); what is left trains, and a
training sequence needs an input and its target. So a user needs at least four items to take part in training,
validation and test alike; shorter users are dropped (and counted) by the split, problems for `data import` and
`data inspect`, and a dataset with no user that long is unusable.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized

from benchmark.data.problems import DatasetProblem

MIN_SEQUENCE_LENGTH = 4
RULE = (
    f"a user needs at least {MIN_SEQUENCE_LENGTH} items: a training input and its target, "
    "then a validation and a test item (leave-one-out)"
)


def usable_users(sequences: Sequence[Sized]) -> int:
    return sum(1 for sequence in sequences if len(sequence) >= MIN_SEQUENCE_LENGTH)


def too_short(user: str, length: int, minimum: int = MIN_SEQUENCE_LENGTH) -> DatasetProblem:
    return DatasetProblem("too short", f"user '{user}': {length} items, fewer than the minimum {minimum}")


def unusable(source: str, sequences: Sequence[Sized]) -> str | None:
    """Why a dataset cannot be split at all (no users, or none long enough), or None."""
    if not sequences:
        return f"{source}: the dataset is empty (no user sequences)"
    if usable_users(sequences) == 0:
        longest = max(len(sequence) for sequence in sequences)
        return (
            f"{source}: no user of {len(sequences)} has {MIN_SEQUENCE_LENGTH} items (the longest has {longest}); {RULE}"
        )
    return None
