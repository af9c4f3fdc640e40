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

Files and slices are numbers into the version's ``Tree``; the slices still to write are
listed per chunk in arrays (no object per file or slice), made whole arrays at a time
for a first install. Chunks from origins on local disks are read by as many threads as
there are cores; from remote ones, by ``jobs`` threads of which as many as there are cores
decode and write at a time.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import contextlib
import functools
import itertools
import operator
import os
import shutil
import threading
from array import array
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Sequence

from .. import layout
from ..core import codec
from ..core.progress import Progress
from ..errors import InsufficientDiskSpace
from ..formats.manifest import Chunk
from . import disk
from .fetch import Fetcher
from .game_dir import GameDir
from .reuse import Wanted, find_on_disk
from .tree import Tree

GROUP = 1 << 20  # chunks go to the download threads about this many bytes at a time
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Assembly:
    """The files numbered ``todo`` of ``tree`` assembled in ``inst``'s staging directory,
    where ``present`` names the files an interrupted run left there. Position ``j`` of
    ``todo`` is the file's number here (``self.files[j]`` its number in the tree)."""

    def __init__(self, inst: GameDir, tree: Tree, todo: array, fetcher: Fetcher, progress: Progress,
                 present: Collection[str] = ()):
        self.inst, self.tree, self.files, self.fetcher, self.progress = inst, tree, todo, fetcher, progress
        self.root = os.path.join(inst.staging, "")
        self.lock = threading.Lock()
        self.writers: threading.Semaphore | None = None  # set by run: threads decoding and writing at once
        n, slices = len(todo), len(tree.slice_chunk)
        first, chunk_of = tree.first, tree.slice_chunk
        self.every = n == len(tree) and todo == array("i", range(n))  # every file of the tree, in order
        # the slices to write, by chunk: those of chunk k are by_chunk[start[k]:start[k + 1]];
        # each slice's file by its position in todo (-1: not to write)
        self.by_chunk: Sequence[int]
        if self.every:  # every file: made whole arrays at a time
            self.pieces = array("i", map(operator.sub, first[1:], first[:-1]))
            self.owner = tree.slice_file
            self.by_chunk = range(slices) if tree.chunk_ordered else array(
                "i", sorted(range(slices), key=chunk_of.__getitem__))
        else:
            self.pieces = array("i", (first[i + 1] - first[i] for i in todo))
            self.owner = array("i", [-1]) * slices
            for j, i in enumerate(todo):
                self.owner[first[i]:first[i + 1]] = array("i", [j]) * self.pieces[j]
            self.by_chunk = array("i", sorted((s for i in todo for s in range(first[i], first[i + 1])),
                                              key=chunk_of.__getitem__))
        keys = chunk_of if self.by_chunk == range(slices) else array("i", map(chunk_of.__getitem__, self.by_chunk))
        self.start = array("i", map(functools.partial(bisect.bisect_left, keys), range(len(tree.chunks) + 1)))
        self.done = bytearray(slices)  # per slice: written already
        self.missing = array("i", self.pieces)  # per file (its position in todo): slices still to write
        self.mtimes = array("q", bytes(8 * n))  # per file: its mtime once whole (0: not yet)
        self.staged_whole = bytearray(n)  # per file: its staging file is there, of its size
        self.opened = bytearray(n)  # per file in pieces: its staging file is known to be there
        self.copies: dict[int, tuple[str, disk.Stamp]] = {}  # file -> an identical file on disk
        self.local: dict[str, tuple[str, int]] = {}  # chunk id -> a file on disk holding it, and where
        self.downloaded = self.reused = self.fetched = self.chunks_reused = 0
        self._resume(present)

    def _slots(self, k: int) -> list[int]:
        """The slices of chunk ``k`` still to write."""
        done = self.done
        return [s for s in self.by_chunk[self.start[k]:self.start[k + 1]] if not done[s]]

    def _needed(self) -> list[int]:
        """The chunks with slices still to write."""
        start = self.start
        if 1 not in self.done:  # nothing written yet: each chunk with a slice to write
            return [k for k in range(len(self.tree.chunks)) if start[k + 1] > start[k]]
        return [k for k in range(len(self.tree.chunks)) if self._slots(k)]

    def _staged(self, j: int) -> str:
        return self.root + self.tree.paths[self.files[j]]

    def _make_folder(self, j: int) -> None:
        """The directory of file ``j``'s staging file, made if it is not there."""
        os.close(_open_dir(self.root, self.tree.paths[self.files[j]].rpartition("/")[0]))

    def _written(self, s: int) -> None:
        """Slice ``s`` is in its staging file (found there, or copied with its file)."""
        self.done[s] = 1
        self.missing[self.owner[s]] -= 1

    # -- what is on disk already ----------------------------------------------------

    def _resume(self, present: Collection[str]) -> None:
        """Keep what an interrupted run wrote: each chunk with slices in staging files is
        put together again from them (and from the installed files of the version that
        hold its other slices) and hashed; if it is whole and right, every slice of it in
        staging that holds the same bytes is kept."""
        if not present:
            return
        tree = self.tree
        touched: dict[int, None] = {}
        for j, i in enumerate(self.files):
            if tree.paths[i] not in present:
                continue
            st = os.lstat(self._staged(j))
            if st.st_size != tree.sizes[i]:
                continue
            self.staged_whole[j] = 1
            if st.st_mode & 0o777 != tree.mode(i):  # died before its mode was set
                os.chmod(self._staged(j), tree.mode(i))
            for s in tree.slices(i):
                touched[tree.slice_chunk[s]] = None
        installed: dict[int, list[tuple[str, int]]] = {}  # their slices in the files not being written
        for i in range(len(tree)):
            for s in tree.slices(i):
                if self.owner[s] < 0 and tree.slice_chunk[s] in touched:
                    installed.setdefault(tree.slice_chunk[s], []).append((os.path.join(self.inst.dest, tree.paths[i]), s))
        have = sum(self._keep_staged(k, installed.get(k, [])) for k in touched)
        for j in range(len(self.files)):
            if self.staged_whole[j] and self.missing[j] == 0:
                self.mtimes[j] = os.stat(self._staged(j)).st_mtime_ns
        if have:
            self.reused += have
            self.progress(have)

    def _keep_staged(self, k: int, installed: list[tuple[str, int]]) -> int:
        tree = self.tree
        chunk = tree.chunks[k]
        staged = [(self._staged(self.owner[s]), s) for s in self._slots(k) if self.staged_whole[self.owner[s]]]
        data, covered, used = bytearray(chunk.size), 0, set()
        for path, s in sorted(staged + installed, key=lambda p: tree.slice_chunk_offset[p[1]]):
            if tree.slice_chunk_offset[s] == covered:
                part = _read(path, tree.slice_offset[s], tree.slice_size[s])
                if len(part) == tree.slice_size[s]:
                    data[covered:covered + len(part)] = part
                    covered += len(part)
                    used.add(s)
        if covered != chunk.size or codec.chunk_id(data) != chunk.id:
            return 0
        kept = 0
        for path, s in staged:
            at, size = tree.slice_chunk_offset[s], tree.slice_size[s]
            if s in used or _read(path, tree.slice_offset[s], size) == data[at:at + size]:
                self._written(s)
                kept += size
        return kept

    def find_local(self, candidates: Callable[[], list[Path]]) -> None:
        """Note which files still to write are on disk whole, and where on disk the
        chunks still needed are, among the files ``candidates()`` lists (asked only when
        something is still to write)."""
        if not any(self.missing):
            return
        paths = candidates()
        if not paths:
            return
        tree = self.tree
        wanted = {j: Wanted(tree.sizes[i], tree.sha256(i),
                            [(tree.chunks[tree.slice_chunk[s]].id, tree.slice_offset[s])
                             for s in tree.slices(i) if tree.whole(s)])
                  for j, i in enumerate(self.files) if self.missing[j]}
        if not wanted:
            return
        needed = {tree.chunks[k].id for k in self._needed()}
        found = find_on_disk(paths, tree.m.params, wanted, needed)
        self.local = found.chunks
        for j, source in found.files.items():
            self.copies[j] = source
            i = self.files[j]
            for s in tree.slices(i):
                if not self.done[s]:
                    self._written(s)

    def check_space(self) -> None:
        sizes, done = self.tree.slice_size, self.done
        if 1 in done:
            need = sum(sizes[s] for s in self.by_chunk if not done[s])
        elif isinstance(self.by_chunk, range):  # every slice of the tree
            need = sum(sizes)
        else:
            need = sum(map(sizes.__getitem__, self.by_chunk))
        need += sum(self.tree.sizes[self.files[j]] for j in self.copies)
        free = shutil.disk_usage(self.inst.dest).free
        if need > free:
            m = self.tree.m
            raise InsufficientDiskSpace(
                f"{self.inst.dest}: {m.product} {m.version} needs {mib(need)} more, {mib(free)} are free"
            )

    # -- writing ---------------------------------------------------------------------

    def run(self, jobs: int) -> None:
        """Write every slice still missing, ``jobs`` downloads at a time; from origins on
        local disks, where a read has no latency to hide, by as many threads as there are
        cores."""
        tree = self.tree
        paths = tree.paths if self.every else list(map(tree.paths.__getitem__, self.files))
        # made before any chunk is written: empty files, and files in pieces that something
        # left in staging (an interrupted run, a patch that failed: made again, at their size
        # and mode); any other file in pieces is made by the first of its pieces to come
        made = [j for j in itertools.compress(range(len(self.files)), map((1).__ne__, self.pieces))
                if j not in self.copies and not self.staged_whole[j]
                and (not self.pieces[j] or os.path.lexists(self.root + paths[j]))]
        disk.share_heap()
        cores = _cores()
        local = all(origin.location.is_local for origin in self.fetcher.origins)
        threads = max(1, min(jobs, cores) if local else jobs)
        # only as many threads as there are cores decode and write at once: the other
        # requests in flight hold chunks as stored
        self.writers = threading.Semaphore(cores) if threads > cores else None
        with cf.ThreadPoolExecutor(threads) as pool:
            _all(pool, threads, self._copy, list(self.copies))
            _all(pool, threads, self._make, made)
            needed = self._needed()
            self.fetcher.prefetch([layout.chunk_key(tree.chunks[k].id, tree.chunks[k].key_id) for k in needed
                                   if tree.chunks[k].id not in self.local])
            # manifest order, so that files complete one after another; small chunks in
            # groups, as a task costs more than a small chunk's work
            _all(pool, threads, self._deliver_all, list(self._groups(needed, threads)), self.fetcher.stopped)
        self.chunks_reused = sum(1 for k in range(len(tree.chunks)) if self.start[k + 1] > self.start[k]) - self.fetched

    def _make(self, j: int) -> None:
        self._make_folder(j)
        fd = disk.create(self._staged(j), self.tree.mode(self.files[j]))
        self.opened[j] = 1
        try:
            disk.preallocate(fd, self.tree.sizes[self.files[j]])
            if self.pieces[j] == 0:
                self.mtimes[j] = os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)

    def _groups(self, needed: list[int], jobs: int) -> Iterator[list[int]]:
        """Chunks in manifest order, about ``GROUP`` bytes a group but about four groups a
        job at least, so that a small download still has ``jobs`` requests in flight."""
        chunks = self.tree.chunks
        most = min(GROUP, sum(chunks[k].size for k in needed) // (4 * max(1, jobs)))
        group: list[int] = []
        size = 0
        for k in needed:
            group.append(k)
            size += chunks[k].size
            if size >= most:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _copy(self, j: int) -> None:
        """File ``j`` copied from the identical file found on disk, unless that file
        changed since it was hashed: then its chunks are fetched like any other's."""
        i, (path, stamp) = self.files[j], self.copies[j]
        size = self.tree.sizes[i]
        try:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            src = -1
        try:
            if src >= 0 and disk.Stamp.of(os.fstat(src)) == stamp:
                self._make_folder(j)
                fd = disk.create(self._staged(j), self.tree.mode(i))
                try:
                    disk.copy_range(src, fd, size, 0, 0)
                    if disk.Stamp.of(os.fstat(src)) == stamp:  # nothing wrote to it while it was copied
                        self.mtimes[j] = os.fstat(fd).st_mtime_ns
                        with self.lock:
                            self.reused += size
                        self.progress(size)
                        return
                finally:
                    os.close(fd)
            with self.lock:  # its slices are to be written after all
                for s in self.tree.slices(i):
                    if self.done[s]:
                        self.done[s] = 0
                        self.missing[j] += 1
            if self.pieces[j] != 1:
                self._make(j)
        finally:
            if src >= 0:
                os.close(src)

    def _deliver_all(self, ks: list[int]) -> None:
        for k in ks:
            self._deliver(k)

    def _deliver(self, k: int) -> None:
        chunk = self.tree.chunks[k]
        slots = list(self._slots(k))
        with self.writers or contextlib.nullcontext():
            data = self._from_disk(chunk)
            if data is not None:
                with self.lock:
                    self.reused += sum(self.tree.slice_size[s] for s in slots)
                written = self._write(slots, data)
        if data is None:
            # decoded and written under ``writers`` too
            written = self.fetcher.chunk(chunk, lambda data: self._write(slots, data), self.writers)
            with self.lock:
                self.downloaded += chunk.stored_size
                self.fetched += 1
        self.progress(written)  # not within the fetch: what it raises is the caller's, never a retry

    def _write(self, slots: list[int], data: bytes) -> int:
        """Each slice in ``slots`` of the chunk ``data`` written to its staging file;
        returns the bytes written. Run for every file: names bound once, no call but the
        system's for a file written whole, each file opened by its name in its directory
        (open once for the files of one directory in a row: the path is not walked again
        for each)."""
        tree, files, owner, mtimes, root = self.tree, self.files, self.owner, self.mtimes, self.root
        paths, pieces, execs, sizes = tree.paths, self.pieces, tree.execs, tree.slice_size
        chunk_offset, file_offset, opened = tree.slice_chunk_offset, tree.slice_offset, self.opened
        create, write_at, fstat, close = disk.create, disk.write_at, os.fstat, os.close
        view = memoryview(data)
        written = 0
        folder, dir_fd = None, -1
        try:
            for s in slots:
                j = owner[s]
                i = files[j]
                at = chunk_offset[s]
                size = sizes[s]
                d, _, name = paths[i].rpartition("/")
                if d != folder:
                    if dir_fd >= 0:
                        close(dir_fd)
                        dir_fd = -1
                    dir_fd = _open_dir(root, d)
                    folder = d
                if pieces[j] == 1:  # the whole file in one write
                    fd = create(name, 0o755 if execs[i] else 0o644, dir_fd)
                    try:
                        write_at(fd, view[at:at + size], 0)
                        mtimes[j] = fstat(fd).st_mtime_ns
                    finally:
                        close(fd)
                else:
                    if opened[j]:  # made by another of its pieces (or found): no failed create first
                        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
                    else:
                        fd = disk.open_part(name, 0o755 if execs[i] else 0o644, tree.sizes[i], dir_fd)
                        opened[j] = 1
                    try:
                        write_at(fd, view[at:at + size], file_offset[s])
                        with self.lock:
                            self.missing[j] -= 1
                            whole = self.missing[j] == 0
                        if whole:  # every other slice of it landed before it was counted
                            mtimes[j] = fstat(fd).st_mtime_ns
                    finally:
                        close(fd)
                written += size
        finally:
            if dir_fd >= 0:
                close(dir_fd)
        return written

    def _from_disk(self, chunk: Chunk) -> bytes | None:
        source = self.local.get(chunk.id)
        if source is None:
            return None
        data = _read(source[0], source[1], chunk.size)
        return data if codec.chunk_id(data) == chunk.id else None  # it changed since: download


def _open_dir(root: str, d: str) -> int:
    """The directory ``d`` (a relative path, "" for none) below ``root``, open; made first,
    with those above it, if it is not there (by whichever thread needs it first)."""
    try:
        return os.open(root + d, _DIRECTORY)
    except FileNotFoundError:
        os.makedirs(root + d, exist_ok=True)
        return os.open(root + d, _DIRECTORY)


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read(path: str, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of the file at ``path`` (fewer if it is shorter, none
    if it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.pread(fd, size, offset)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _all(pool: cf.ThreadPoolExecutor, threads: int, work: Callable[[Any], None], items: list,
         stop: threading.Event | None = None) -> None:
    """``work`` on every item, by ``threads`` tasks of ``pool`` that take the items in
    turn (a thread is woken for each task, not for each item); the first failure (or a
    progress callback that raises: a player cancelling) stops what has not started and
    is raised. So does Ctrl-C while it waits, which also sets ``stop``: the downloads
    waiting their share of a rate limit stop waiting."""
    left = iter(items)  # taking the next item holds the GIL: no two tasks take the same
    failures: list[BaseException] = []

    def run() -> None:
        for item in left:
            if failures:
                return
            try:
                work(item)
            except BaseException as exc:
                failures.append(exc)
                return

    try:
        for fut in [pool.submit(run) for _ in range(min(threads, len(items)))]:
            fut.result()
    except BaseException as exc:  # Ctrl-C in this thread: the tasks take no more items
        failures.append(exc)
        if stop is not None:
            stop.set()
        raise
    if failures:
        raise failures[0]
