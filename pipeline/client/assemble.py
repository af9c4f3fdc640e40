"""Assembling the files of a version in staging, a chunk at a time.

A chunk may hold slices of many files (small files packed end to end), and a file may
hold slices of several chunks. Each chunk is fetched (or found on disk) once, checked
once against its id, and every slice of it is written to the staging file that holds it
(``data[chunk_offset:chunk_offset+size]`` at ``offset``); a file is whole when its last
slice lands. No file is read back: every chunk is proven against the signed manifest's
id as it arrives, and a copy of a whole file found on disk against its SHA-256.

Where each slice's bytes come from, cheapest first: a staging file an interrupted run
wrote (the chunk re-assembled from its slices and hashed), a copy of the whole file on
disk (``reuse.py``; copied by the kernel), a chunk found in a file on disk, an origin.

What is kept per slice is three integers in arrays, chained per chunk: a build of a
million files costs a few dozen bytes a file here.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import posixpath
import shutil
import threading
from array import array
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from .. import layout
from ..core import codec
from ..core.progress import Progress
from ..errors import InsufficientDiskSpace
from ..formats.manifest import Chunk, ChunkRef, FileEntry, Manifest
from . import disk
from .fetch import Fetcher
from .game_dir import GameDir, file_mode
from .reuse import find_on_disk

GROUP = 1 << 20  # chunks go to the download threads about this many bytes at a time


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Assembly:
    """The files ``files`` of ``m`` assembled in ``inst``'s staging directory, where
    ``present`` names the files an interrupted run left there."""

    def __init__(self, inst: GameDir, m: Manifest, files: list[FileEntry], fetcher: Fetcher, progress: Progress,
                 present: Collection[str] = ()):
        self.inst, self.m, self.files, self.fetcher, self.progress = inst, m, files, fetcher, progress
        self.root = os.path.join(inst.staging, "")
        self.lock = threading.Lock()
        self.writers = threading.Semaphore(os.cpu_count() or 1)  # threads decoding and writing at once
        self.index: dict[str, int] = {}  # chunk id -> its number
        self.chunks: list[Chunk] = []
        # every slice to write: its file's number and its number in that file, chained per chunk
        self.head, self.tail = array("i"), array("i")
        self.slot_file, self.slot_ref, self.slot_next = array("i"), array("i"), array("i")
        self.done = bytearray()  # per slice: written already
        self.missing = array("i", bytes(4 * len(files)))  # per file: slices still to write
        self.mtimes = array("q", bytes(8 * len(files)))  # per file: its mtime once whole (0: not yet)
        self.staged_whole = bytearray(len(files))  # per file: its staging file is there, of its size
        self.copies: dict[int, tuple[str, disk.Stamp]] = {}  # file number -> an identical file on disk
        self.local: dict[str, tuple[str, int]] = {}  # chunk id -> a file on disk holding it, and where
        self.downloaded = self.reused = self.fetched = self.chunks_reused = 0
        index, head, tail, nxt = self.index, self.head, self.tail, self.slot_next
        s = 0
        for i, f in enumerate(files):
            for j, ref in enumerate(f.chunks):
                k = index.get(ref.id)
                if k is None:
                    k = index[ref.id] = len(self.chunks)
                    self.chunks.append(ref.chunk)
                    head.append(s)
                    tail.append(-1)
                else:
                    nxt[tail[k]] = s
                tail[k] = s
                self.slot_file.append(i)
                self.slot_ref.append(j)
                nxt.append(-1)
                s += 1
            self.missing[i] = len(f.chunks)
        self.done = bytearray(s)
        self._resume(present)

    def _slots(self, k: int) -> Iterator[int]:
        """The slices of chunk ``k`` still to write."""
        s = self.head[k]
        while s >= 0:
            if not self.done[s]:
                yield s
            s = self.slot_next[s]

    def _ref(self, s: int) -> ChunkRef:
        return self.files[self.slot_file[s]].chunks[self.slot_ref[s]]

    def _staged(self, i: int) -> str:
        return self.root + self.files[i].path

    def _written(self, s: int) -> None:
        """Slice ``s`` is in its staging file (found there, or copied with its file)."""
        self.done[s] = 1
        self.missing[self.slot_file[s]] -= 1

    # -- what is on disk already ----------------------------------------------------

    def _resume(self, present: Collection[str]) -> None:
        """Keep what an interrupted run wrote: each chunk with slices in staging files is
        put together again from them (and from the installed files of the version that
        hold its other slices) and hashed; if it is whole and right, every slice of it in
        staging that holds the same bytes is kept."""
        if not present:
            return
        touched: dict[int, None] = {}
        for i, f in enumerate(self.files):
            if f.path not in present:
                continue
            st = os.lstat(self._staged(i))
            if st.st_size != f.size:
                continue
            self.staged_whole[i] = 1
            if st.st_mode & 0o777 != file_mode(f):  # died before its mode was set
                os.chmod(self._staged(i), file_mode(f))
            for ref in f.chunks:
                touched[self.index[ref.id]] = None
        ids = {self.chunks[k].id for k in touched}
        writing = {f.path for f in self.files}
        installed: dict[str, list[tuple[str, ChunkRef]]] = {}  # slices of those chunks in files not being written
        for f in self.m.files:
            if f.path not in writing:
                for ref in f.chunks:
                    if ref.id in ids:
                        installed.setdefault(ref.id, []).append((os.path.join(self.inst.dest, f.path), ref))
        have = 0
        for k in touched:
            have += self._keep_staged(k, installed.get(self.chunks[k].id, []))
        for i, f in enumerate(self.files):
            if self.staged_whole[i] and self.missing[i] == 0:
                self.mtimes[i] = os.stat(self._staged(i)).st_mtime_ns
        if have:
            self.reused += have
            self.progress(have)

    def _keep_staged(self, k: int, installed: list[tuple[str, ChunkRef]]) -> int:
        chunk = self.chunks[k]
        staged = [(self._staged(self.slot_file[s]), self._ref(s), s) for s in self._slots(k)
                  if self.staged_whole[self.slot_file[s]]]
        pieces = sorted(staged + [(path, ref, -1) for path, ref in installed], key=lambda p: p[1].chunk_offset)
        data, covered, used = bytearray(chunk.size), 0, set()
        for path, ref, s in pieces:
            if ref.chunk_offset == covered:
                part = _read(path, ref)
                if len(part) == ref.size:
                    data[covered:covered + ref.size] = part
                    covered += ref.size
                    used.add(s)
        if covered != chunk.size or codec.chunk_id(data) != chunk.id:
            return 0
        kept = 0
        for path, ref, s in staged:
            if s in used or _read(path, ref) == data[ref.chunk_offset:ref.chunk_offset + ref.size]:
                self._written(s)
                kept += ref.size
        return kept

    def find_local(self, candidates: list[Path]) -> None:
        """Note which files still to write are on disk whole, and where on disk the
        chunks still needed are."""
        wanted = [i for i, n in enumerate(self.missing) if n]
        if not wanted or not candidates:
            return
        needed = {c.id for k, c in enumerate(self.chunks) if any(True for _ in self._slots(k))}
        found = find_on_disk(candidates, self.m.params, self.files, wanted, needed)
        self.local = found.chunks
        for i, source in found.files.items():
            self.copies[i] = source
            for ref_slot in self._file_slots(i):
                self._written(ref_slot)

    def _file_slots(self, i: int) -> Iterator[int]:
        """The slices of file ``i`` still to write."""
        for ref in self.files[i].chunks:
            for s in self._slots(self.index[ref.id]):
                if self.slot_file[s] == i:
                    yield s

    def check_space(self) -> None:
        need = sum(self._ref(s).size for k in range(len(self.chunks)) for s in self._slots(k))
        need += sum(self.files[i].size for i in self.copies)
        free = shutil.disk_usage(self.inst.dest).free
        if need > free:
            raise InsufficientDiskSpace(
                f"{self.inst.dest}: {self.m.product} {self.m.version} needs {mib(need)} more, {mib(free)} are free"
            )

    # -- writing ---------------------------------------------------------------------

    def run(self, jobs: int) -> None:
        """Write every slice still missing, ``jobs`` at a time."""
        for d in sorted({posixpath.dirname(f.path) for f in self.files} - {""}):
            os.makedirs(self.root + d, exist_ok=True)
        for i, f in enumerate(self.files):
            if i in self.copies or self.staged_whole[i]:
                continue
            if len(f.chunks) != 1:  # written in pieces (or empty): made now, at its size
                fd = disk.create(self._staged(i), file_mode(f))
                try:
                    disk.preallocate(fd, f.size)
                    if not f.chunks:
                        self.mtimes[i] = os.fstat(fd).st_mtime_ns
                finally:
                    os.close(fd)
        disk.share_heap()
        with cf.ThreadPoolExecutor(max(1, jobs)) as pool:
            _all(pool, self._copy, list(self.copies))
            needed = [k for k in range(len(self.chunks)) if any(True for _ in self._slots(k))]
            self.fetcher.prefetch([layout.chunk_key(self.chunks[k].id) for k in needed
                                   if self.chunks[k].id not in self.local])
            # manifest order, so that files complete one after another; small chunks in
            # groups, as a task costs more than a small chunk's work
            _all(pool, self._deliver_all, list(self._groups(needed, jobs)))
        self.chunks_reused = len({self.index[r.id] for f in self.files for r in f.chunks}) - self.fetched

    def _groups(self, needed: list[int], jobs: int) -> Iterator[list[int]]:
        """Chunks in manifest order, about ``GROUP`` bytes a group but about four groups a
        job at least, so that a small download still has ``jobs`` requests in flight."""
        most = min(GROUP, sum(self.chunks[k].size for k in needed) // (4 * max(1, jobs)))
        group: list[int] = []
        size = 0
        for k in needed:
            group.append(k)
            size += self.chunks[k].size
            if size >= most:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _copy(self, i: int) -> None:
        """File ``i`` copied from the identical file found on disk, unless that file
        changed since it was hashed: then its chunks are fetched like any other's."""
        f, (path, stamp) = self.files[i], self.copies[i]
        try:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            src = -1
        try:
            if src >= 0 and disk.Stamp.of(os.fstat(src)) == stamp:
                fd = disk.create(self._staged(i), file_mode(f))
                try:
                    disk.copy_range(src, fd, f.size, 0, 0)
                    if disk.Stamp.of(os.fstat(src)) == stamp:  # nothing wrote to it while it was copied
                        self.mtimes[i] = os.fstat(fd).st_mtime_ns
                        with self.lock:
                            self.reused += f.size
                        self.progress(f.size)
                        return
                finally:
                    os.close(fd)
            with self.lock:  # its slices are to be written after all
                for ref in f.chunks:
                    s = self.head[self.index[ref.id]]
                    while s >= 0:
                        if self.slot_file[s] == i and self.done[s]:
                            self.done[s] = 0
                            self.missing[i] += 1
                        s = self.slot_next[s]
            if len(f.chunks) != 1:
                fd = disk.create(self._staged(i), file_mode(f))
                try:
                    disk.preallocate(fd, f.size)
                finally:
                    os.close(fd)
        finally:
            if src >= 0:
                os.close(src)

    def _deliver_all(self, ks: list[int]) -> None:
        for k in ks:
            self._deliver(k)

    def _deliver(self, k: int) -> None:
        chunk = self.chunks[k]
        slots = list(self._slots(k))
        with self.writers:
            data = self._from_disk(chunk)
            if data is not None:
                with self.lock:
                    self.reused += sum(self._ref(s).size for s in slots)
                written = self._write(slots, data)
        if data is None:
            # decoded and written under ``writers`` too: the requests in flight hold chunks
            # as stored, and only as many threads as there are cores hold decoded chunks and write
            written = self.fetcher.chunk(chunk, lambda data: self._write(slots, data), self.writers)
            with self.lock:
                self.downloaded += chunk.stored_size
                self.fetched += 1
        self.progress(written)  # not within the fetch: what it raises is the caller's, never a retry

    def _write(self, slots: list[int], data: bytes) -> int:
        """Each slice in ``slots`` of the chunk ``data`` written to its staging file;
        returns the bytes written."""
        view = memoryview(data)
        written = 0
        for s in slots:
            i = self.slot_file[s]
            f = self.files[i]
            ref = f.chunks[self.slot_ref[s]]
            part = view[ref.chunk_offset:ref.chunk_offset + ref.size]
            if len(f.chunks) == 1:  # the whole file in one write
                fd = disk.create(self._staged(i), file_mode(f))
                try:
                    disk.write_at(fd, part, 0)
                    self.mtimes[i] = os.fstat(fd).st_mtime_ns
                finally:
                    os.close(fd)
            else:
                fd = os.open(self._staged(i), os.O_WRONLY | os.O_CLOEXEC)
                try:
                    disk.write_at(fd, part, ref.offset)
                    with self.lock:
                        self.missing[i] -= 1
                        whole = self.missing[i] == 0
                    if whole:  # every other slice of it landed before it was counted
                        self.mtimes[i] = os.fstat(fd).st_mtime_ns
                finally:
                    os.close(fd)
            written += ref.size
        return written

    def _from_disk(self, chunk: Chunk) -> bytes | None:
        source = self.local.get(chunk.id)
        if source is None:
            return None
        try:
            fd = os.open(source[0], os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.pread(fd, chunk.size, source[1])
            finally:
                os.close(fd)
        except OSError:
            return None
        return data if codec.chunk_id(data) == chunk.id else None  # it changed since: download


def _read(path: str, ref: ChunkRef) -> bytes:
    """The bytes of slice ``ref`` in the file at ``path`` (fewer if it is shorter, none if
    it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.pread(fd, ref.size, ref.offset)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _all(pool: cf.ThreadPoolExecutor, work: Callable[[Any], None], items: list) -> None:
    """``work`` on every item in ``pool``; the first failure (or a progress callback
    that raises: a player cancelling) stops what has not started and is raised."""
    failed = threading.Event()

    def run(item: Any) -> None:
        if failed.is_set():
            return
        try:
            work(item)
        except BaseException:
            failed.set()
            raise

    futures = [pool.submit(run, item) for item in items]
    try:
        for fut in cf.as_completed(futures):
            fut.result()
    except BaseException:
        failed.set()
        for fut in futures:
            fut.cancel()
        raise
