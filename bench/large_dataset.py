"""Write a large amazon-iisan dataset quickly, to measure `mmbench data import` at scale.

python -m bench.large_dataset OUT [--users 100000] [--items 50000] [--per-user 10] [--no-images]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np


def write_large_amazon(directory: Path, users: int, items: int, per_user: int, images: bool, seed: int = 0) -> int:
    from PIL import Image

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=False)
    with open(directory / "items.tsv", "w") as handle:
        handle.writelines(f"item{i}\tsynthetic title {i} {i % 97} {i % 13}\n" for i in range(items))
    # Zipf-like popularity, as real catalogues have: a k-core filter then has work to do.
    popularity = 1.0 / np.arange(1, items + 1) ** 0.7
    picks = rng.choice(items, size=(users, per_user), p=popularity / popularity.sum())
    with open(directory / "users.tsv", "w") as handle:
        handle.writelines(f"user{u}\t{' '.join(f'item{i}' for i in row)}\n" for u, row in enumerate(picks))
    if images:
        (directory / "images").mkdir()
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (120, 30, 200)).save(buffer, format="JPEG")
        payload = buffer.getvalue()
        for i in range(items):
            (directory / "images" / f"item{i}.jpg").write_bytes(payload)
    return users * per_user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--no-images", action="store_true")
    arguments = parser.parse_args()
    count = write_large_amazon(
        arguments.out, arguments.users, arguments.items, arguments.per_user, not arguments.no_images
    )
    print(f"wrote {count} interactions to {arguments.out}")


if __name__ == "__main__":
    main()
