"""The one progress callback type: stages call it with the number of bytes just done."""

from __future__ import annotations

from typing import Callable

Progress = Callable[[int], None]


def ignore(n: int) -> None:
    """A Progress that shows nothing."""
