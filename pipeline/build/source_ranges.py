"""Reading byte ranges of a build's source files, locally or from object stores, in bounded
memory. A short read means the source changed or was cut short since it was inventoried."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Iterator

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


def read_view(loc: Location, offset: int, length: int) -> memoryview:
    """``read_range`` into a buffer owned by the calling thread and reused by its next
    call: chunking reads tens of MB per task, and fresh buffers each time cost more in
    page faults than the copy. The view is valid until this thread reads again."""
    if not loc.is_local or length == 0:
        return memoryview(read_range(loc, offset, length))
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < length:
        buf = _scratch.buf = bytearray(length)
    view = memoryview(buf)[:length]
    got = _checked_read(loc, lambda: _read_into(loc, offset, view))
    _check_length(loc, offset, length, got)
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
