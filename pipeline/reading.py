"""Reading byte ranges of source files, locally or from object stores, in bounded memory."""

from __future__ import annotations

import functools
import hashlib
import threading
from typing import Iterator

from . import urls
from .errors import DepotError, SourceChanged, SourceInvalid

BLOCK = 8 << 20


@functools.lru_cache(maxsize=64)
def _fs(url: str):
    return urls.filesystem(url)


def read_range(url: str, offset: int, length: int) -> bytes:
    """Exactly ``length`` bytes of ``url`` from ``offset``; a short read means the source
    changed or was cut short since it was inventoried."""
    if length == 0:
        return b""
    fs, path = _fs(url)
    try:
        if urls.is_local(fs):
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        else:
            data = fs.cat_file(path, start=offset, end=offset + length)
    except FileNotFoundError as exc:
        raise SourceChanged(f"{url}: no longer exists") from exc
    except DepotError:
        raise
    except urls.BACKEND_ERRORS as exc:
        raise SourceInvalid(f"{url}: cannot read ({exc})") from exc
    if len(data) != length:
        raise SourceChanged(f"{url}: expected {length} bytes at offset {offset}, got {len(data)}")
    return data


_scratch = threading.local()


def read_view(url: str, offset: int, length: int) -> memoryview:
    """``read_range`` into a buffer owned by the calling thread and reused by its next
    call: chunking reads tens of MB per task, and fresh buffers each time cost more in
    page faults than the copy. The view is valid until this thread reads again."""
    fs, path = _fs(url)
    if not urls.is_local(fs) or length == 0:
        return memoryview(read_range(url, offset, length))
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < length:
        buf = _scratch.buf = bytearray(length)
    view = memoryview(buf)[:length]
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            got = f.readinto(view)
    except FileNotFoundError as exc:
        raise SourceChanged(f"{url}: no longer exists") from exc
    except urls.BACKEND_ERRORS as exc:
        raise SourceInvalid(f"{url}: cannot read ({exc})") from exc
    if got != length:
        raise SourceChanged(f"{url}: expected {length} bytes at offset {offset}, got {got}")
    return view


def iter_range(url: str, offset: int, length: int, block: int = BLOCK) -> Iterator[bytes]:
    end = offset + length
    while offset < end:
        n = min(block, end - offset)
        yield read_range(url, offset, n)
        offset += n


def sha256_range(url: str, offset: int, length: int) -> str:
    h = hashlib.sha256()
    for block in iter_range(url, offset, length):
        h.update(block)
    return h.hexdigest()
