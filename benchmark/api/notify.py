"""Where the functions of the API say what they are doing: a callable that takes one line (the command line prints
it on stderr; a notebook may collect or print it)."""

from __future__ import annotations

from collections.abc import Callable

Notify = Callable[[str], None]
