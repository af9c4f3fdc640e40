"""The order of version names: natural, so that 1.9.0 < 1.10.0."""

from __future__ import annotations

import re
from typing import Iterable

_TOKENS = re.compile(r"\d+|\D+")


def version_key(version: str) -> list[tuple[int, int, str]]:
    """Digit runs compare as numbers, everything else as text, digits before text."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in _TOKENS.findall(version)]


def sort_versions(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=version_key)


def earlier(versions: Iterable[str], than: str) -> list[str]:
    """The versions before ``than``, oldest first."""
    return [v for v in sort_versions(versions) if version_key(v) < version_key(than)]
