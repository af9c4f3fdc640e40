"""Checks on documents kept in columns (manifest and inventory, format 2) for what their
JSON Schemas cannot say cheaply: one check in C over a whole column, where a schema's
check per item would cost twenty times as much on 100,000 files."""

from __future__ import annotations

import itertools

HEX = 64  # hex digits of a chunk id or a SHA-256

# With paths joined by "/" and framed by "/", what a path of format 1's pattern cannot
# hold: an empty, absolute or trailing-slash path or an empty part make "//".
_BAD_IN_PATHS = ("//", "/./", "/../", "\\", "\x00")


_PIECE = 1 << 20  # characters checked at a time: a million digests are 64 MB of hex


def hex_ok(s: str) -> bool:
    """Lowercase hex digits only (and an even number of them), checked a piece at a time
    so that no copy of a whole column is made."""
    try:
        return all(bytes.fromhex(piece).hex() == piece for piece in (s[i : i + _PIECE] for i in range(0, len(s), _PIECE)))
    except ValueError:
        return False


def split(s: str) -> list[str]:
    """Digests end to end, one by one."""
    return [s[i : i + HEX] for i in range(0, len(s), HEX)]


def paths_ok(paths: list) -> bool:
    """No path empty, absolute, with an empty, . or .. part, a backslash or a NUL; a
    TypeError if an item is not a string."""
    if not paths:  # an empty build
        return True
    joined = "/" + "/".join(paths) + "/"
    return not any(bad in joined for bad in _BAD_IN_PATHS)


def increasing(paths: list[str]) -> bool:
    """Strictly increasing: sorted, no path twice."""
    return all(map(str.__lt__, paths, itertools.islice(paths, 1, None)))


def naturals(values: list) -> bool:
    """Non-negative integers only."""
    return not (set(map(type, values)) - {int}) and (not values or min(values) >= 0)
