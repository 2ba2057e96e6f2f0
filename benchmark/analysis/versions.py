"""Which versions of the stack a row ran on: torch, transformers and peft change what is measured (kernels,
model code) and what random-weight towers are (their initialisation differs across transformers versions)."""

from __future__ import annotations

import polars as pl

STACK = ("torch", "transformers", "peft")


def with_stack(rows: pl.DataFrame) -> pl.DataFrame:
    """Adds `stack`: "torch X, transformers Y, peft Z" from the row's package_versions (null when unknown)."""
    parts = [
        pl.concat_str([pl.lit(f"{name} "), pl.col("package_versions").str.json_path_match(f"$.{name}")])
        for name in STACK
    ]
    return rows.with_columns(pl.concat_str(parts, separator=", ").alias("stack"))


def transformers_versions(rows: pl.DataFrame) -> list[str]:
    found = rows["package_versions"].drop_nulls().str.json_path_match("$.transformers").drop_nulls()
    return sorted(found.unique().to_list())
