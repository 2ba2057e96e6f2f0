"""Files and directories that mmbench renames into place get the modes the user's umask asks for.

`tempfile.mkstemp` and `mkdtemp` create 0600 files and 0700 directories, private to the owner; a
result, cache or import renamed from them would keep that mode, and a group sharing a results
or cache directory could not read it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def honour_umask(path: Path) -> None:
    """Give a file 0666, a directory (and everything in it) 0777, both less the umask."""
    mask = _current_umask()
    if path.is_dir():
        for root, _directories, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                if not os.path.islink(os.path.join(root, name)):
                    os.chmod(os.path.join(root, name), 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)
