"""Rewrite a wheel without some of its files: `python scripts/slim_wheel.py WHEEL PATTERN...` drops every member
whose path matches a glob PATTERN, and its line in the wheel's RECORD, in place.

Why: `make gpu-wheels` carries bitsandbytes to the GPU machine, whose device tool carries 64 MiB in all. The wheel
holds a kernel library for every CUDA version it supports (129 MB unpacked); the machine's CUDA 13 needs one.
"""

from __future__ import annotations

import fnmatch
import sys
import zipfile
from pathlib import Path


def slim(wheel: Path, patterns: list[str]) -> list[str]:
    """Drop the members matching `patterns` from `wheel`; the names dropped."""
    slimmed = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        dropped = [name for name in source.namelist() if any(fnmatch.fnmatch(name, p) for p in patterns)]
        for member in source.infolist():
            if member.filename in dropped:
                continue
            data = source.read(member)
            if member.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if line.split(",", 1)[0] not in dropped).encode()
            target.writestr(member, data)
    slimmed.replace(wheel)
    return dropped


if __name__ == "__main__":
    names = slim(Path(sys.argv[1]), sys.argv[2:])
    print(f"{sys.argv[1]}: dropped {len(names)} file(s)", file=sys.stderr)
