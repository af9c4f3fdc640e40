"""Reading byte ranges of a build's source files, locally or from object stores, in bounded
memory. A short read means the source changed or was cut short since it was inventoried."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Iterable, Iterator, Sequence, Union

from ..core.hashing import BLOCK
from ..errors import DepotError, SourceChanged
from ..storage.translate import backend_errors
from .sources import source_error
from ..storage.location import Location


def _read_local(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _checked_read(url: str, read):
    try:
        return read()
    except FileNotFoundError as exc:
        raise SourceChanged(f"{url}: no longer exists") from exc
    except DepotError:
        raise
    except backend_errors() as exc:
        raise source_error(url, "cannot read", exc) from exc


def _check_length(url: str, offset: int, length: int, got: int) -> None:
    if got != length:
        raise SourceChanged(f"{url}: expected {length} bytes at offset {offset}, got {got}")


def read_range(loc: Location, offset: int, length: int) -> bytes:
    """Exactly ``length`` bytes of ``loc`` from ``offset``."""
    if length == 0:
        return b""
    if loc.is_local:
        data = _checked_read(loc.url, lambda: _read_local(loc.local_path, offset, length))
    else:
        fs, path = loc.filesystem()
        data = _checked_read(loc.url, lambda: fs.cat_file(path, start=offset, end=offset + length))
    _check_length(loc.url, offset, length, len(data))
    return data


_scratch = threading.local()


def scratch(length: int) -> memoryview:
    """``length`` bytes of a buffer owned by the calling thread and reused by its next
    call: chunking reads tens of MB per task, and fresh buffers each time cost more in
    page faults than the copy."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < length:
        buf = _scratch.buf = None  # the old one goes before the new one is made
        buf = _scratch.buf = bytearray(length)
    return memoryview(buf)[:length]


def _pread_into(fd: int, offset: int, view: memoryview) -> int:
    """Fill ``view`` from ``offset`` of an open file, up to its end: how many bytes."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


Where = Union[str, Location]  # a local file's path, or any location


def read_into(view: memoryview, pieces: Iterable[tuple[Where, int, int]]) -> None:
    """Fill ``view`` with the bytes of ``pieces`` (where, offset, length) end to end.
    Several pieces: the packed small files of a build, as one stream, a few system calls
    a file (the Python around them costs as much as they do)."""
    pos = 0
    where: Where = ""
    try:
        for where, offset, n in pieces:
            part = view[pos : pos + n]
            pos += n
            if not isinstance(where, str):
                part[:] = read_range(where, offset, n)
                continue
            fd = os.open(where, os.O_RDONLY)
            try:
                got = os.preadv(fd, [part], offset)
                if got < n:  # a short read: the rest, or the end of the file
                    got += _pread_into(fd, offset + got, part[got:])
            finally:
                os.close(fd)
            if got != n:
                _check_length(where, offset, n, got)
    except DepotError:
        raise
    except FileNotFoundError as exc:
        raise SourceChanged(f"{where}: no longer exists") from exc
    except backend_errors() as exc:
        raise source_error(str(where), "cannot read", exc) from exc
    assert pos == len(view)


def read_joined(pieces: Sequence[tuple[Where, int, int]]) -> memoryview:
    """The bytes of ``pieces`` end to end (see ``read_into``), in the calling thread's
    ``scratch`` buffer: valid until this thread reads again."""
    view = scratch(sum(n for _, _, n in pieces))
    read_into(view, pieces)
    return view


def iter_range(loc: Location, offset: int, length: int, block: int = BLOCK) -> Iterator[bytes]:
    end = offset + length
    while offset < end:
        n = min(block, end - offset)
        yield read_range(loc, offset, n)
        offset += n


def fingerprint(loc: Location) -> tuple:
    """What changes when a source file is written to: size, modification and change times
    and inode of a local file; size, ETag and modification time of an object."""
    if loc.is_local:
        st = _checked_read(loc.url, lambda: os.stat(loc.local_path))
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
    fs, path = loc.filesystem()
    info = _checked_read(loc.url, lambda: fs.info(path))
    return info.get("size"), info.get("ETag"), str(info.get("LastModified") or info.get("mtime") or "")


def sha256_range(loc: Location, offset: int, length: int) -> str:
    h = hashlib.sha256()
    for block in iter_range(loc, offset, length):
        h.update(block)
    return h.hexdigest()
