"""A build's files laid end to end, as chunking tasks read them: columns (paths, offsets in
the source, sizes, starts in the stream, file numbers), never an object per file, and
windows of them as slices, so that a task is sent the few thousand files it reads."""

from __future__ import annotations

import bisect
import itertools
from array import array
from dataclasses import dataclass
from typing import Sequence

from ..storage import Location
from .cutting import Spans
from .source_ranges import Where, read_into, read_joined


@dataclass(frozen=True)
class Files:
    """Files end to end: file ``k`` (number ``numbers[k]`` of the build's files, ``sizes[k]``
    bytes) starts at ``starts[k]`` of a stream of ``size`` bytes. Its bytes are at
    ``paths[k]`` below ``source`` (a directory), or from ``bases[k]`` of ``source`` itself
    (an uncompressed tar, a staged pack); ``local`` is the source's path when it is on this
    machine (read by path: a location per file costs more than reading a small file). The
    packed files are one such stream (``packed``: the tasks that read them hash them); a
    file cut on its own, or a batch of them, another. A window of the stream holds only
    the files that overlap it, so that a task is sent a few thousand files, not all."""

    source: Location
    local: str
    directory: bool
    paths: list[str]
    bases: array
    sizes: array
    starts: array
    numbers: array
    size: int
    packed: bool = False

    @classmethod
    def of(cls, source: Location, directory: bool, paths: list[str], bases: array, sizes: array,
           numbers: Sequence[int], packed: bool = False) -> "Files":
        """Files ``numbers`` of a build whose files are ``paths``, ``bases``, ``sizes``."""
        mine = array("q", (sizes[i] for i in numbers))
        starts = array("q", itertools.accumulate(mine, initial=0))
        size = starts.pop()
        return cls(source, source.local_path if source.is_local else "", directory, [paths[i] for i in numbers],
                   array("q", (bases[i] for i in numbers)), mine, starts, array("q", numbers), size, packed)

    def _slice(self, lo: int, hi: int, starts: array | None = None, size: int | None = None) -> "Files":
        return Files(self.source, self.local, self.directory, self.paths[lo:hi], self.bases[lo:hi],
                      self.sizes[lo:hi], self.starts[lo:hi] if starts is None else starts, self.numbers[lo:hi],
                      self.size if size is None else size, self.packed)

    def one(self, k: int) -> "Files":
        """File ``k`` alone, as a stream of its own."""
        return self._slice(k, k + 1, array("q", [0]), self.sizes[k])

    def _at(self, offset: int) -> int:
        """Which file holds the stream's byte at ``offset``."""
        return bisect.bisect_right(self.starts, offset) - 1

    def window(self, offset: int, length: int) -> "Files":
        return self._slice(self._at(offset), bisect.bisect_left(self.starts, offset + length))

    def loc(self, k: int) -> Location:
        return self.source.child(self.paths[k]) if self.directory else self.source

    def _where(self, k: int) -> Where:
        if not self.local:
            return self.loc(k)
        return self.local + "/" + self.paths[k] if self.directory else self.local

    def _pieces(self, offset: int, length: int):
        end = offset + length
        k = self._at(offset)
        while offset < end:
            start = self.starts[k]
            n = min(start + self.sizes[k], end) - offset
            yield self._where(k), self.bases[k] + offset - start, n
            offset += n
            k += 1

    def read_into(self, view: memoryview, offset: int) -> None:
        read_into(view, self._pieces(offset, len(view)))

    def view(self, offset: int, length: int) -> memoryview:
        return read_joined(list(self._pieces(offset, length)))

    def spans(self, lo: int, hi: int, overlapping: bool = False) -> Spans:
        """The packed files that start in ``[lo, hi)`` of the stream (or that overlap it),
        to hash."""
        if not self.packed or hi <= lo:
            return Spans()
        first = self._at(lo) if overlapping else bisect.bisect_left(self.starts, lo)
        last = bisect.bisect_left(self.starts, hi)
        return Spans(self.numbers[first:last], self.starts[first:last], self.sizes[first:last])
