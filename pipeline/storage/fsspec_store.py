"""What every fsspec-backed store shares: reads, listings, deletes and scans over any fsspec
filesystem. The backends (local, memory, s3) add how each makes a write atomic."""

from __future__ import annotations

import contextlib
import datetime
from typing import Iterator

from ..layout import check_key
from .base import ObjectInfo, PrunableStore
from .translate import translated
from .location import Location, join

TEMP_SUFFIX = ".tmp"


def temp_name(name: str, unique: str) -> str:
    """The name a write uses beside its key until it is complete: hidden, so not a key."""
    return f".{name}.{unique}{TEMP_SUFFIX}"


def is_temp(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(".")


class FsspecStore(PrunableStore):
    def __init__(self, location: Location):
        self.location = location
        self.fs, self.root = location.filesystem()

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _translated(self, key: str = ""):
        return translated(join(self.url, key))

    def get(self, key: str) -> bytes:
        with self._translated(key):
            return self.fs.cat_file(self._path(key))

    def has(self, key: str) -> bool:
        with self._translated(key):
            return self.fs.isfile(self._path(key))

    def size(self, key: str) -> int:
        with self._translated(key):
            return self.fs.size(self._path(key))

    def put(self, key: str, data: bytes) -> None:
        with self._translated(key):
            self.fs.pipe_file(self._path(key), bytes(data))

    def _find(self, prefix: str) -> dict[str, dict]:
        """Every object under ``prefix`` (by key, with fsspec's details)."""
        base = f"{self.root}/{prefix}".rstrip("/") if prefix else self.root
        with self._translated(prefix):
            try:
                found = self.fs.find(base, detail=True)
            except FileNotFoundError:
                found = {}
        start = len(self.root) + 1
        return {p[start:]: info for p, info in found.items()
                if p.startswith(self.root + "/") and p[start:].startswith(prefix)}

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self._find(prefix) if not is_temp(k)))

    def scan(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, info in sorted(self._find(prefix).items()):
            yield ObjectInfo(key, int(info.get("size") or 0), modified_of(info), is_temp(key), info.get("ETag"))

    def delete(self, key: str) -> None:
        with self._translated(key):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._path(key))


def modified_of(info: dict) -> float:
    for name in ("mtime", "LastModified", "created"):
        value = info.get(name)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return 0.0
