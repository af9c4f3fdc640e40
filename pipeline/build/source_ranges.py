"""Reading byte ranges of a build's source files, locally or from object stores, in bounded
memory. A short read means the source changed or was cut short since it was inventoried."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Iterator, Sequence

from ..core.hashing import BLOCK
from ..errors import DepotError, SourceChanged
from ..storage.translate import backend_errors
from .sources import source_error
from ..storage.location import Location


def _read_into(loc: Location, offset: int, view: memoryview) -> int:
    """Fill ``view`` from ``offset`` of a local file; the number of bytes read."""
    with open(loc.local_path, "rb") as f:
        f.seek(offset)
        return f.readinto(view)


def _read_local(loc: Location, offset: int, length: int) -> bytes:
    with open(loc.local_path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _checked_read(loc: Location, read):
    try:
        return read()
    except FileNotFoundError as exc:
        raise SourceChanged(f"{loc.url}: no longer exists") from exc
    except DepotError:
        raise
    except backend_errors() as exc:
        raise source_error(loc.url, "cannot read", exc) from exc


def _check_length(loc: Location, offset: int, length: int, got: int) -> None:
    if got != length:
        raise SourceChanged(f"{loc.url}: expected {length} bytes at offset {offset}, got {got}")


def read_range(loc: Location, offset: int, length: int) -> bytes:
    """Exactly ``length`` bytes of ``loc`` from ``offset``."""
    if length == 0:
        return b""
    if loc.is_local:
        data = _checked_read(loc, lambda: _read_local(loc, offset, length))
    else:
        fs, path = loc.filesystem()
        data = _checked_read(loc, lambda: fs.cat_file(path, start=offset, end=offset + length))
    _check_length(loc, offset, length, len(data))
    return data


_scratch = threading.local()


def _buffer(length: int) -> memoryview:
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < length:
        buf = _scratch.buf = bytearray(length)
    return memoryview(buf)[:length]


def read_view(loc: Location, offset: int, length: int) -> memoryview:
    """``read_range`` into a buffer owned by the calling thread and reused by its next
    call: chunking reads tens of MB per task, and fresh buffers each time cost more in
    page faults than the copy. The view is valid until this thread reads again."""
    if not loc.is_local or length == 0:
        return memoryview(read_range(loc, offset, length))
    view = _buffer(length)
    got = _checked_read(loc, lambda: _read_into(loc, offset, view))
    _check_length(loc, offset, length, got)
    return view


def _pread_into(loc: Location, offset: int, view: memoryview) -> int:
    """Fill ``view`` from ``offset`` of a local file, with the fewest system calls (an
    open file object costs more than the read of a small file)."""
    fd = os.open(loc.local_path, os.O_RDONLY)
    try:
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                break
            got += n
        return got
    finally:
        os.close(fd)


def read_joined(pieces: Sequence[tuple[Location, int, int]]) -> memoryview:
    """The bytes of ``pieces`` (location, offset, length) end to end, read into this
    thread's buffer like ``read_view``: the packed small files of a build as one stream."""
    view = _buffer(sum(n for _, _, n in pieces))
    pos = 0
    for loc, offset, n in pieces:
        part = view[pos : pos + n]
        if loc.is_local:
            got = _checked_read(loc, lambda: _pread_into(loc, offset, part))
        else:
            data = read_range(loc, offset, n)
            part[: len(data)] = data
            got = len(data)
        _check_length(loc, offset, n, got)
        pos += n
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
        st = _checked_read(loc, lambda: os.stat(loc.local_path))
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
    fs, path = loc.filesystem()
    info = _checked_read(loc, lambda: fs.info(path))
    return info.get("size"), info.get("ETag"), str(info.get("LastModified") or info.get("mtime") or "")


def sha256_range(loc: Location, offset: int, length: int) -> str:
    h = hashlib.sha256()
    for block in iter_range(loc, offset, length):
        h.update(block)
    return h.hexdigest()
