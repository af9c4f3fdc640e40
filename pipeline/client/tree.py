"""A manifest as the client installs it: its files, links and directories in arrays,
checked by ingest's own rules. A format 2 manifest's arrays are made from its columns,
whole columns at a time where they can be (no entry or slice object); a format 1
manifest's, in one pass over its entries.

Held as entry and slice objects, a million-file manifest costs several hundred MB; here a
file costs about 60 bytes (its path is the manifest's own string) and a slice 20.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from array import array
from typing import Iterable, Iterator

from ..core.safety import check_columns, check_entries
from ..formats.manifest import Chunk, Columns, FileEntry, Manifest

_FILE = bytes.maketrans(b"fpdl", b"\x01\x01\x00\x00")  # a type letter -> whether it is a file's
_BIT = bytes.maketrans(b"01", b"\x00\x01")
_RUNS = re.compile("f|p+")  # a file cut on its own, or packed files in a row
WINDOW = 1 << 16  # packed files made into slices at a time


class Tree:
    """The files of ``m`` by number (in the manifest's order), each file's slices by
    number (a file's slices are numbered on from the previous file's), its links and its
    directories."""

    def __init__(self, m: Manifest, where: str):
        self.m = m
        self.paths: list[str] = []
        self.sizes = array("q")
        self.execs = bytearray()
        self.hashes = ""  # each file's SHA-256, 64 hex digits (the manifest's own column)
        self.first = array("i", [0])  # the slices of file i are first[i] to first[i + 1]
        self.slice_chunk = array("i")  # a slice's chunk, by number in ``chunks``
        self.slice_offset = array("q")  # where the slice is in its file
        self.slice_chunk_offset = array("i")  # where it is in its chunk
        self.slice_size = array("i")
        self.slice_file = array("i")  # the file a slice is of
        self.index: dict[str, int] = {}  # chunk id -> its number
        self.chunks: list[Chunk] = []
        self.links: list[tuple[str, str]] = []  # (path, target)
        self.dirs: list[str] = []
        columns = m.columns
        if columns is None:
            check_entries(self._read(m.iter_entries()), where)
        else:
            check_columns(columns.paths, columns.types, columns.targets, where)
            self._read_columns(columns)
        chunk_of = self.slice_chunk
        # whether the slices are in the order of their chunks (those of the pack stream are)
        self.chunk_ordered = all(map(operator.le, chunk_of, itertools.islice(chunk_of, 1, None)))
        # format 2's paths are in strictly increasing order (Columns checks it)
        self._sorted = columns is not None or all(map(str.__lt__, self.paths, itertools.islice(self.paths, 1, None)))
        self._at: dict[str, int] | None = None  # path -> number, made if the paths are not sorted

    def _read(self, entries: Iterable[FileEntry]) -> Iterator[FileEntry]:
        hashes: list[str] = []
        for e in entries:
            if e.type == "file":
                self.paths.append(e.path)
                self.sizes.append(e.size)
                self.execs.append(e.executable)
                hashes.append(e.hash_sha256)
                for ref in e.chunks:
                    k = self.index.get(ref.id)
                    if k is None:
                        k = self.index[ref.id] = len(self.chunks)
                        self.chunks.append(ref.chunk)
                    self.slice_chunk.append(k)
                    self.slice_offset.append(ref.offset)
                    self.slice_chunk_offset.append(ref.chunk_offset)
                    self.slice_size.append(ref.size)
                    self.slice_file.append(len(self.paths) - 1)
                self.first.append(len(self.slice_chunk))
            elif e.type == "symlink":
                self.links.append((e.path, e.target))
            else:
                self.dirs.append(e.path)
            yield e
        self.hashes = "".join(hashes)

    def _read_columns(self, c: Columns) -> None:
        if "d" in c.types or "l" in c.types:
            is_file = c.types.encode().translate(_FILE)
            self.paths = list(itertools.compress(c.paths, is_file))
            self.links = list(zip((p for p, t in zip(c.paths, c.types) if t == "l"), c.targets))
            self.dirs = [p for p, t in zip(c.paths, c.types) if t == "d"]
        else:
            self.paths = c.paths  # the manifest's own list
        self.sizes = array("q", c.sizes)
        self.execs = bytearray(c.executable.encode().translate(_BIT))
        self.hashes = c.hashes
        self.chunks = list(c.unique_chunks().values())  # numbered as in the manifest's chunk table
        self.index = {chunk.id: k for k, chunk in enumerate(self.chunks)}
        csz, pack, own, sizes = c.chunk_sizes, c.pack, iter(c.own), c.sizes
        first, chunk_of, offset, chunk_offset, size_of, file_of = (
            self.first, self.slice_chunk, self.slice_offset, self.slice_chunk_offset, self.slice_size,
            self.slice_file)
        pi = pos = 0  # the pack stream's chunk (by number in ``pack``), and the offset in it
        # a file cut on its own, or a run of packed files (made a chunk at a time)
        for run in _RUNS.finditer(c.types.replace("d", "").replace("l", "")):
            a, b = run.span()
            if run.group()[0] == "p":
                pi, pos = self._packed(sizes, a, b, pack, csz, pi, pos)
                continue
            off = 0
            for k in next(own):
                chunk_of.append(k)
                offset.append(off)
                chunk_offset.append(0)
                size_of.append(csz[k])
                file_of.append(a)
                off += csz[k]
            first.append(len(chunk_of))

    def _packed(self, sizes: list[int], a: int, b: int, pack: list[int], csz: list[int], pi: int,
                pos: int) -> tuple[int, int]:
        """The slices of the packed files ``a`` to ``b - 1``; an empty one (depot packs
        none) has none."""
        while 0 in itertools.islice(sizes, a, b):
            empty = sizes.index(0, a, b)
            pi, pos = self._packed(sizes, a, empty, pack, csz, pi, pos)
            self.first.append(len(self.slice_chunk))
            a = empty + 1
        for start in range(a, b, WINDOW):  # runs of at most WINDOW files: a list of their offsets each
            pi, pos = self._packed_run(sizes, start, min(start + WINDOW, b), pack, csz, pi, pos)
        return pi, pos

    def _packed_run(self, sizes: list[int], a: int, b: int, pack: list[int], csz: list[int], pi: int,
                    pos: int) -> tuple[int, int]:
        """The slices of the packed files ``a`` to ``b - 1``, from offset ``pos`` of the
        pack stream's chunk ``pi`` on, made a chunk at a time: every file that starts in a
        chunk is a slice of it, the first one maybe going on from the chunk before, the last
        maybe going on into the next (none is empty). Returns where the stream is after
        them."""
        first, chunk_of, offset, chunk_offset, size_of, file_of = (
            self.first, self.slice_chunk, self.slice_offset, self.slice_chunk_offset, self.slice_size,
            self.slice_file)
        n = b - a
        starts = list(itertools.accumulate(itertools.islice(sizes, a, b), initial=0))  # in the run's bytes
        total, begins, at = starts[-1], -pos, 0  # the run's bytes; where chunk pi begins, and at, in them
        while at < total:
            k = pack[pi]
            ends = begins + csz[k]
            upto = min(ends, total)
            fa = bisect.bisect_left(starts, at, 0, n)  # the files that start in this chunk: fa to fb - 1
            fb = bisect.bisect_left(starts, upto, fa, n)
            if fa == n or starts[fa] != at:  # the file before goes on in this chunk
                chunk_of.append(k)
                offset.append(at - starts[fa - 1])
                chunk_offset.append(at - begins)
                size_of.append(min(starts[fa], upto) - at)
                file_of.append(a + fa - 1)
            if fb > fa:
                base = len(chunk_of)
                first.extend(range(base + (fa == 0), base + fb - fa))  # where each file before ends
                chunk_of.extend(array("i", [k]) * (fb - fa))
                offset.extend(array("q", bytes(8 * (fb - fa))))
                chunk_offset.extend(array("i", map(operator.sub, starts[fa:fb], itertools.repeat(begins))))
                size_of.extend(array("i", map(operator.sub, starts[fa + 1:fb + 1], starts[fa:fb])))
                if starts[fb] > upto:  # the last goes on in the next chunk
                    size_of[-1] = upto - starts[fb - 1]
                file_of.extend(range(a + fa, a + fb))
            at = upto
            if at == ends:
                pi, begins = pi + 1, ends
        first.append(len(chunk_of))
        return pi, at - begins

    def __len__(self) -> int:
        return len(self.paths)

    def mode(self, i: int) -> int:
        return 0o755 if self.execs[i] else 0o644

    def sha256(self, i: int) -> str:
        return self.hashes[64 * i:64 * i + 64]

    def slices(self, i: int) -> range:
        return range(self.first[i], self.first[i + 1])

    def whole(self, s: int) -> bool:
        """Whether slice ``s`` is a whole chunk."""
        return self.slice_chunk_offset[s] == 0 and self.slice_size[s] == self.chunks[self.slice_chunk[s]].size

    def find(self, path: str) -> int | None:
        """The number of the file at ``path``, if there is one."""
        if self._sorted:
            i = bisect.bisect_left(self.paths, path)
            return i if i < len(self.paths) and self.paths[i] == path else None
        if self._at is None:
            self._at = {p: i for i, p in enumerate(self.paths)}
        return self._at.get(path)

    def same_paths(self, other: "Tree") -> Iterator[tuple[int, int]]:
        """``(i, j)`` for each path that is file ``i`` here and file ``j`` in ``other``."""
        if self._sorted and other._sorted:  # one walk of both, no table of paths
            j, theirs = 0, other.paths
            for i, p in enumerate(self.paths):
                while j < len(theirs) and theirs[j] < p:
                    j += 1
                if j < len(theirs) and theirs[j] == p:
                    yield i, j
            return
        at = {p: j for j, p in enumerate(other.paths)}
        for i, p in enumerate(self.paths):
            if p in at:
                yield i, at[p]
