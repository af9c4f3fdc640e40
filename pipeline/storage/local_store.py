"""A store in a local directory. Writes go to a hidden temporary beside the key and are
renamed into place; create-if-absent is a hard link, which the kernel makes atomic (of an
unnamed ``O_TMPFILE`` where the file system has them);
compare-and-swap holds an exclusive lock on the key's directory while it compares.

The lock is ``flock`` on the directory: local file systems only (on NFS, ``flock`` on a
directory opened read-only is refused, and a compare-and-swap fails with
STORE_UNAVAILABLE rather than racing).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import time
import uuid
from typing import BinaryIO, Iterator

from ..errors import StoreUnavailable
from .base import ObjectInfo, Tagged, content_tag
from .fsspec_store import FsspecStore, is_temp, temp_name


class LocalStore(FsspecStore):
    def __init__(self, location):
        # No fsspec until something needs it (listings): a command that only reads and
        # writes keys here spares its import.
        self.location, self.root = location, location.local_path
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            # Read as a directory, a file would be an empty repository, and writes would
            # fail naming some key below it.
            raise StoreUnavailable(f"{location.url}: is a file; a local repository or origin is a directory")

    @functools.cached_property
    def fs(self):
        return self.location.filesystem()[0]

    def get(self, key: str) -> bytes:
        # os-level reads: a buffered file asks whether it is a terminal and reads once
        # more to find the end, and this runs once per chunk an install reads.
        with self._translated(key):
            fd = os.open(self._path(key), os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                data = os.read(fd, size)
                while len(data) < size:  # a short read, rare
                    more = os.read(fd, size - len(data))
                    if not more:
                        break
                    data += more
            finally:
                os.close(fd)
        return data

    def has(self, key: str) -> bool:
        with self._translated(key):
            return os.path.isfile(self._path(key))

    def _files(self, prefix: str) -> list[str]:
        """The key of every file below ``prefix``, temporaries too, as fsspec would find
        them, by a walk of the directory: listings need not import fsspec."""
        base = os.path.join(self.root, prefix).rstrip("/") if prefix else self.root
        start = len(self.root) + 1
        if os.path.isfile(base):
            found = [base[start:]]
        else:
            found = [os.path.join(d, name)[start:] for d, _, names in os.walk(base) for name in names]
        return [k for k in found if k.startswith(prefix)]

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self._files(prefix) if not is_temp(k)))

    def scan(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self._files(prefix)):
            try:
                st = os.stat(os.path.join(self.root, key))
            except FileNotFoundError:
                continue  # gone since the walk (a temporary renamed into place, a pruned object)
            yield ObjectInfo(key, st.st_size, st.st_mtime, is_temp(key))

    def size(self, key: str) -> int:
        with self._translated(key):
            return os.stat(self._path(key)).st_size

    def put(self, key: str, data: bytes) -> None:
        with self._staged(key, data) as (tmp, path), self._translated(key):
            os.replace(tmp, path)

    def get_tagged(self, key: str) -> Tagged:
        data = self.get(key)
        return Tagged(data, content_tag(data))

    def put_if_match(self, key: str, data: bytes, tag: str | None) -> bool:
        if tag is None:
            with self._translated(key):
                created = _create_unnamed(self._path(key), data)
            if created is not None:
                return created
        with self._staged(key, data) as (tmp, path), self._translated(key):
            if tag is None:
                try:
                    os.link(tmp, path)  # atomic create-if-absent
                except FileExistsError:
                    return False
                return True
            with _locked(os.path.dirname(path)):
                try:
                    with open(path, "rb") as f:
                        current = content_tag(f.read())
                except FileNotFoundError:
                    return False
                if current != tag:
                    return False
                os.replace(tmp, path)
                return True

    def touch(self, key: str, older_than: float = 0.0) -> int:
        path = self._path(key)
        with self._translated(key):
            st = os.stat(path)
            if time.time() - st.st_mtime > older_than:
                with _locked(os.path.dirname(path)):  # not between prune's check and its unlink
                    os.utime(path)  # gone meanwhile: NotFound, and the caller writes it again
            return st.st_size

    def prune(self, key: str, written_before: float) -> bool:
        path = self._path(key)
        with self._translated(key):
            try:
                with _locked(os.path.dirname(path)):
                    if os.lstat(path).st_mtime >= written_before:
                        return False
                    os.unlink(path)
                    return True
            except FileNotFoundError:
                return False

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        # A stream that fails (a truncated archive being staged) leaves nothing: neither
        # its temporary nor the directories made for it.
        made = _missing_directories(os.path.dirname(self._path(key)), self.root)
        try:
            with self._staged(key) as (tmp, path):
                with self._translated(key):
                    f = open(tmp, "wb")
                with f:
                    yield f
                with self._translated(key):
                    os.replace(tmp, path)
        except BaseException:
            for directory in made:  # deepest first; one another writer filled meanwhile stays
                try:
                    os.rmdir(directory)
                except OSError:
                    break
            raise

    @contextlib.contextmanager
    def _staged(self, key: str, data: bytes | None = None) -> Iterator[tuple[str, str]]:
        """A temporary beside the key (holding ``data``, if given), removed whatever
        happens: (temporary, final path)."""
        path = self._path(key)
        head, tail = os.path.split(path)
        tmp = os.path.join(head, temp_name(tail, uuid.uuid4().hex))
        try:
            with self._translated(key):
                os.makedirs(head, exist_ok=True)
                if data is not None:
                    with open(tmp, "wb") as f:
                        f.write(data)
            yield tmp, path
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _missing_directories(directory: str, root: str) -> list[str]:
    """The directories from ``directory`` up to ``root`` that do not exist yet, deepest first."""
    missing = []
    while directory.startswith(root) and not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


_UNNAMED = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")  # Linux, with /proc


def _create_unnamed(path: str, data: bytes) -> bool | None:
    """Create ``path`` with ``data`` if it does not exist: the bytes go to an unnamed file in
    its directory (``O_TMPFILE``), linked into place whole. One directory entry made instead
    of a temporary's three (create, link, unlink), which is most of what storing a chunk
    costs the file system; a killed process leaves nothing. True if created, False if the
    path existed, None where the file system or the platform cannot (the caller stages a
    named temporary instead)."""
    if not _UNNAMED:
        return None
    head = os.path.dirname(path)
    try:
        try:
            fd = os.open(head, os.O_TMPFILE | os.O_WRONLY, 0o666)
        except FileNotFoundError:
            os.makedirs(head, exist_ok=True)
            fd = os.open(head, os.O_TMPFILE | os.O_WRONLY, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        try:
            # linkat(..., AT_SYMLINK_FOLLOW), which os.link asks for only when given a
            # directory fd (ignored here: the path is absolute); plain link() would link
            # the /proc entry itself.
            os.link(f"/proc/self/fd/{fd}", os.path.abspath(path), src_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            return False
        return True
    finally:
        os.close(fd)


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
