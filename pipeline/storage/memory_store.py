"""A store in fsspec's in-process memory filesystem, for tests and scratch work. One lock
makes conditional writes atomic between threads (the filesystem lives in one process)."""

from __future__ import annotations

import contextlib
import io
import threading
from typing import BinaryIO, Iterator

from .base import Tagged, content_tag
from .fsspec_store import FsspecStore

_lock = threading.Lock()


class MemoryStore(FsspecStore):
    def get_tagged(self, key: str) -> Tagged:
        with _lock:
            data = self.get(key)
        return Tagged(data, content_tag(data))

    def put_if_match(self, key: str, data: bytes, tag: str | None) -> bool:
        path = self._path(key)
        with _lock, self._translated(key):
            try:
                current = content_tag(self.fs.cat_file(path))
            except FileNotFoundError:
                current = None
            if current != tag:
                return False
            self.fs.pipe_file(path, bytes(data))
            return True

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        buf = io.BytesIO()  # memory:// publishes a file as soon as it is opened: hold the bytes until done
        yield buf
        self.put(key, buf.getvalue())
