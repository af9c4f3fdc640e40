"""SHA-256 of files, the service's ``hash_sha256``, read in one block size everywhere."""

from __future__ import annotations

import hashlib
import os

BLOCK = 8 << 20  # large enough that a read is one system call per 8 MiB, small enough to stay in cache


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes; OSError if it cannot be read."""
    h = hashlib.sha256()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def sha256_or_none(path: str | os.PathLike) -> str | None:
    """``sha256_file``, or None for a file that is missing or unreadable."""
    try:
        return sha256_file(path)
    except OSError:
        return None
