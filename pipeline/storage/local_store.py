"""A store in a local directory. Writes go to a hidden temporary beside the key and are
renamed into place; create-if-absent is a hard link, which the kernel makes atomic;
compare-and-swap holds an exclusive lock on the key's directory while it compares."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from typing import BinaryIO, Iterator

from .base import Tagged
from .fsspec_store import FsspecStore, temp_name


class LocalStore(FsspecStore):
    def get(self, key: str) -> bytes:
        with self._translated(key), open(self._path(key), "rb") as f:
            return f.read()

    def has(self, key: str) -> bool:
        with self._translated(key):
            return os.path.isfile(self._path(key))

    def size(self, key: str) -> int:
        with self._translated(key):
            return os.stat(self._path(key)).st_size

    def put(self, key: str, data: bytes) -> None:
        with self._translated(key), self._temp(key, data) as (tmp, path):
            os.replace(tmp, path)

    def get_tagged(self, key: str) -> Tagged:
        data = self.get(key)
        return Tagged(data, _tag(data))

    def put_if_match(self, key: str, data: bytes, tag: str | None) -> bool:
        with self._translated(key), self._temp(key, data) as (tmp, path):
            if tag is None:
                return _link(tmp, path)
            with _locked(os.path.dirname(path)):
                try:
                    with open(path, "rb") as f:
                        current = _tag(f.read())
                except FileNotFoundError:
                    return False
                if current != tag:
                    return False
                os.replace(tmp, path)
                return True

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        with self._translated(key):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = _temp_path(path)
            try:
                with open(tmp, "wb") as f:
                    yield f
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    @contextlib.contextmanager
    def _temp(self, key: str, data: bytes) -> Iterator[tuple[str, str]]:
        """``data`` written to a temporary beside the key: (temporary, final path)."""
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = _temp_path(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            yield tmp, path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _temp_path(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, temp_name(tail, uuid.uuid4().hex))


def _link(tmp: str, path: str) -> bool:
    try:
        os.link(tmp, path)  # atomic create-if-absent
    except FileExistsError:
        return False
    return True


def _tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    """An exclusive lock on a directory, between processes: the directory itself is the
    lock, so no lock file can be left behind or swept away while held."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
