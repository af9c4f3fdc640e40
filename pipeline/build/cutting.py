"""Cutting a byte range of a file, or of the stream of packed files, in bounded memory.

A chunking task reads its range a window at a time (core.cdc.read_window) into one buffer
that holds the window and the chunk not yet whole from the window before, so that what a
worker holds is a few MB whatever its segment's size. The buffer is mapped for the task
and unmapped when the task drops it: a freed heap block of that size can stay with the
worker's thread for the rest of the build. As the bytes pass, the chain of
boundaries is cut (the same chain as one cut over the whole range: a cut depends only on
the bytes from its chunk's start, and a chunk is kept only once the buffer holds its
maximum size), the chunks asked for are stored, and the packed files asked for are hashed.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import mmap
from array import array
from typing import Callable, NamedTuple, Protocol, Sequence, TypeVar

from ..core import codec
from ..core.cdc import boundaries, read_window
from ..core.chunk_params import ChunkParams

StoreFn = Callable[[memoryview, int], tuple]
T = TypeVar("T")  # (the chunk's bytes, its offset) -> what storing it gave


class Readable(Protocol):
    @property
    def size(self) -> int: ...

    def read_into(self, view: memoryview, offset: int) -> None: ...


class Spans(NamedTuple):
    """Files of the stream to hash, in stream order: their numbers, where they start, their
    sizes (arrays: a task may hash tens of thousands)."""

    numbers: Sequence[int] = ()
    starts: Sequence[int] = ()
    sizes: Sequence[int] = ()

    def reach(self, hi: int) -> int:
        return max(hi, self.starts[-1] + self.sizes[-1]) if self.starts else hi


class Digests(NamedTuple):
    """SHA-256 digests of files: their numbers, and the digests end to end (32 bytes each)."""

    numbers: array
    digests: bytearray


def task_done() -> None:
    """What a chunking task holds between tasks, given back: its zstd contexts, and the
    blocks freed in the C heap (glibc's ``malloc_trim``), so that workers waiting for the
    manifest to be written hold nothing."""
    codec.release()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def chunking_task(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn``, followed by ``task_done`` however it ends."""

    @functools.wraps(fn)
    def task(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            task_done()

    return task


def _mapped(size: int) -> memoryview:
    return memoryview(mmap.mmap(-1, size))


def buffer_for(params: ChunkParams, span: int) -> memoryview:
    """A buffer big enough to read ``span`` bytes a window at a time: a window and a
    maximum chunk at most."""
    return _mapped(max(1, min(read_window(params) + params.max_size, span)))


class _Buffer:
    """A sliding buffer over ``[lo, hi)`` of ``f``: holds ``[start, end)``."""

    def __init__(self, f: Readable, lo: int, hi: int, params: ChunkParams, buf: memoryview | None):
        self.f, self.hi, self.step = f, hi, read_window(params)
        self.buf = buffer_for(params, hi - lo) if buf is None else buf
        self.start = self.end = lo

    def more(self, keep: int) -> int | None:
        """Drop the bytes before ``keep`` and read the next window: where its bytes start,
        or None once at ``hi``."""
        if self.end >= self.hi:
            return None
        keep = min(keep, self.end)
        carry = self.end - keep
        n = min(self.step, self.hi - self.end)
        assert 0 <= carry and carry + n <= len(self.buf), "kept more than a maximum chunk"
        self.buf[:carry] = self.buf[keep - self.start : self.end - self.start]
        self.f.read_into(self.buf[carry : carry + n], self.end)
        read, self.start, self.end = self.end, keep, self.end + n
        return read

    def view(self, a: int, b: int) -> memoryview:
        return self.buf[a - self.start : b - self.start]


class _Hashes:
    """SHA-256 of the files ``spans``, fed the bytes as they are read."""

    def __init__(self, spans: Spans):
        self.spans, self.next = spans, 0
        self.open: "hashlib._Hash | None" = None
        self.done = Digests(array("q"), bytearray())

    def feed(self, b: _Buffer, lo: int, hi: int) -> None:
        """``[lo, hi)`` was just read into ``b``."""
        numbers, starts, sizes = self.spans
        while self.next < len(starts):
            s = starts[self.next]
            e = s + sizes[self.next]
            if s >= hi:
                return
            if self.open is None and lo <= s and e <= hi:  # whole in this window: the usual case
                self.done.digests.extend(hashlib.sha256(b.view(s, e)).digest())
            else:
                if self.open is None:
                    self.open = hashlib.sha256()
                self.open.update(b.view(max(s, lo), min(e, hi)))
                if e > hi:
                    return
                self.done.digests.extend(self.open.digest())
                self.open = None
            self.done.numbers.append(numbers[self.next])
            self.next += 1


def cut_range(f: Readable, lo: int, hi: int, keep: tuple[int, int], params: ChunkParams, store: StoreFn,
              hashed: Spans = Spans(), buf: memoryview | None = None) -> tuple[list[int], list, Digests]:
    """The chain of boundaries from ``lo`` over ``[lo, hi)`` (as ``core.cdc.boundaries``
    over those bytes: genuine chunks only, unless ``hi`` is the end of ``f``), each chunk of
    it that starts in ``keep`` = [first, end) given to ``store``, and the files ``hashed``
    (which start at or after ``lo``) read to their ends and hashed: (chain, what ``store``
    gave for each, their digests). ``buf``: a ``buffer_for`` the range to use, else one is
    mapped for it."""
    b = _Buffer(f, lo, hashed.reach(hi), params, buf)
    hashes = _Hashes(hashed)
    chain, stored = [lo], []
    cutting = True
    while (read := b.more(chain[-1] if cutting else b.end)) is not None:
        hashes.feed(b, read, b.end)
        if cutting:
            e = min(b.end, hi)
            cutting = e < hi
            cuts = boundaries(b.view(chain[-1], e), chain[-1], params, at_eof=e == f.size)
            for a, z in zip(cuts, cuts[1:]):
                if keep[0] <= a < keep[1]:
                    stored.append(store(b.view(a, z), a))
            chain.extend(cuts[1:])
    return chain, stored, hashes.done


def store_chunks(f: Readable, bounds: list[int], params: ChunkParams, store: StoreFn,
                 hashed: Spans = Spans()) -> tuple[list, Digests]:
    """Each chunk between consecutive ``bounds`` given to ``store``, and the files
    ``hashed`` hashed, in one pass over the bytes they span."""
    lo = min(bounds[0], hashed.starts[0]) if hashed.starts else bounds[0]
    b = _Buffer(f, lo, hashed.reach(bounds[-1]), params, None)
    hashes = _Hashes(hashed)
    stored = []
    k = 0  # the next chunk to store
    while (read := b.more(bounds[k] if k + 1 < len(bounds) else b.end)) is not None:
        hashes.feed(b, read, b.end)
        while k + 1 < len(bounds) and bounds[k + 1] <= b.end:
            stored.append(store(b.view(bounds[k], bounds[k + 1]), bounds[k]))
            k += 1
    return stored, hashes.done
