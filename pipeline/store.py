"""The Store: a small key/value interface over any fsspec location.

Contract (the store test suite checks it against memory, local disk and S3):

- ``get(key)`` returns the whole object or raises ``NotFound``.
- ``put(key, data)`` writes only if the key is absent and says whether it wrote;
  ``put(key, data, overwrite=True)`` replaces. Either way no reader ever sees part
  of an object: local files are written beside the target and renamed into place,
  object stores publish an object only when its upload completes.
- ``writer(key)`` is the streaming form of ``put(..., overwrite=True)``, for objects too
  large to hold in memory; nothing is published if the block raises.
- ``has``, ``size``, ``list(prefix)`` (sorted keys), ``delete`` (missing keys are fine),
  ``open(key)`` (a seekable reader).
- Only "not found" becomes ``NotFound``; other failures become ``StoreUnavailable``
  naming the location.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import uuid
from typing import BinaryIO, Iterator

from fsspec.implementations.memory import MemoryFileSystem

from . import urls
from .errors import DepotError, NotFound, StoreUnavailable
from .layout import check_key


class Store:
    """Abstract store; see the module docstring for the contract."""

    url: str
    read_only = False

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def put(self, key: str, data: bytes, overwrite: bool = False) -> bool:
        raise NotImplementedError

    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        raise NotImplementedError

    def has(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[str]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def url_of(self, key: str) -> str:
        return urls.join(self.url, check_key(key))


@contextlib.contextmanager
def _translate_errors(location: str):
    try:
        yield
    except DepotError:
        raise
    except FileNotFoundError as exc:
        raise NotFound(f"{location}: not found") from exc
    except (*urls.BACKEND_ERRORS, ValueError) as exc:
        raise StoreUnavailable(f"{location}: {exc}") from exc


class FsspecStore(Store):
    """A store rooted at a directory or prefix of any fsspec filesystem."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = urls.filesystem(self.url)
        self._local = urls.is_local(self.fs)
        self._memory = isinstance(self.fs, MemoryFileSystem)

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def get(self, key: str) -> bytes:
        with _translate_errors(self.url_of(key)):
            if self._local:
                with open(self._path(key), "rb") as f:
                    return f.read()
            return self.fs.cat_file(self._path(key))

    def put(self, key: str, data: bytes, overwrite: bool = False) -> bool:
        path = self._path(key)
        with _translate_errors(self.url_of(key)):
            if self._local:
                return _local_put(path, data, overwrite)
            if not overwrite and self.fs.exists(path):
                return False
            self.fs.pipe_file(path, bytes(data))
            return True

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        with _translate_errors(self.url_of(key)):
            if self._local:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = _temp_name(path)
                try:
                    with open(tmp, "wb") as f:
                        yield f
                    os.replace(tmp, path)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            elif self._memory:
                buf = io.BytesIO()  # memory:// publishes at open; hold the bytes until done
                yield buf
                self.fs.pipe_file(path, buf.getvalue())
            else:
                # Object stores upload parts as they come and publish on commit.
                f = self.fs.open(path, "wb", autocommit=False)
                try:
                    yield f
                    f.close()
                except BaseException:
                    f.discard()  # aborts the multipart upload
                    f.closed = True  # nothing left to flush
                    raise
                f.commit()

    def has(self, key: str) -> bool:
        with _translate_errors(self.url_of(key)):
            if self._local:
                return os.path.isfile(self._path(key))
            return self.fs.isfile(self._path(key))

    def size(self, key: str) -> int:
        with _translate_errors(self.url_of(key)):
            if self._local:
                return os.stat(self._path(key)).st_size
            return self.fs.size(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        base = f"{self.root}/{prefix}".rstrip("/") if prefix else self.root
        with _translate_errors(urls.join(self.url, prefix)):
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                found = []
        start = len(self.root) + 1
        keys = (p[start:] for p in found if p.startswith(self.root + "/"))
        return iter(sorted(k for k in keys if k.startswith(prefix) and not _is_temp(k)))

    def delete(self, key: str) -> None:
        with _translate_errors(self.url_of(key)):
            try:
                self.fs.rm_file(self._path(key))
            except FileNotFoundError:
                pass

    def open(self, key: str) -> BinaryIO:
        with _translate_errors(self.url_of(key)):
            return self.fs.open(self._path(key), "rb")


def _temp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{uuid.uuid4().hex}.tmp")


def _is_temp(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(".")


def _local_put(path: str, data: bytes, overwrite: bool) -> bool:
    if not overwrite and os.path.exists(path):
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        if overwrite:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@functools.lru_cache(maxsize=16)
def open_store(url: str) -> Store:
    """The store at ``url``. Cached, so tasks in a worker process share one instance."""
    return FsspecStore(url)
