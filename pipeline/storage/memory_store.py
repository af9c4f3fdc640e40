"""A store in fsspec's in-process memory filesystem, for tests and scratch work. One lock
makes conditional writes atomic between threads (the filesystem lives in one process)."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from typing import BinaryIO, Iterator

from .base import Tagged, content_tag
from .fsspec_store import FsspecStore, modified_of

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

    def touch(self, key: str, older_than: float = 0.0) -> int:
        path = self._path(key)
        with _lock, self._translated(key):
            info = self.fs.info(path)
            if time.time() - modified_of(info) > older_than:
                self.fs.pipe_file(path, self.fs.cat_file(path))  # a new file: created now
            return info["size"]

    def prune(self, key: str, written_before: float) -> bool:
        path = self._path(key)
        with _lock, self._translated(key):
            try:
                if modified_of(self.fs.info(path)) >= written_before:
                    return False
            except FileNotFoundError:
                return False
            self.fs.rm_file(path)
            return True

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        buf = io.BytesIO()  # memory:// publishes a file as soon as it is opened: hold the bytes until done
        yield buf
        self.put(key, buf.getvalue())
