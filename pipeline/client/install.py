"""install: make a game directory hold exactly one published version.

1. Load the manifest from the first origin that has a valid one.
2. Find what is already right: files recorded intact (trusted by size and mtime) cost
   nothing; chunks already written to staging files by an interrupted run are kept.
3. Find chunks on disk: files in the destination that are not right yet (an older version,
   a damaged file) and ``seeds`` are cut with the version's chunk sizes and hashed; every
   chunk found is copied, not downloaded.
4. Refuse to start if the disk cannot hold what remains to be written.
5. Download the rest, many requests in flight, each chunk verified before use, into
   staging files; check each completed file's SHA-256.
6. Swap the verified files in, with the old entries set aside until the new version is
   recorded (see game_dir.py): a failure leaves the previous version as it was. A
   killed install resumes from its staging files.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import os
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .. import layout
from ..core import codec
from ..core.cdc import serial_boundaries
from ..core.hashing import sha256_file
from ..core.progress import Progress, ignore
from ..errors import DestinationConflict, FileHashMismatch, InsufficientDiskSpace, StoreUnavailable
from ..formats import manifest as manifest_doc
from ..formats.channel import Channel
from ..formats.manifest import ChunkRef, FileEntry, Manifest
from .fetch import Fetcher
from .game_dir import STATE_DIR, GameDir, check_manifest, file_mode


@dataclass(frozen=True)
class InstallResult:
    product: str
    version: str
    dest: str
    files: int
    bytes: int
    files_written: int
    bytes_downloaded: int
    bytes_reused: int
    chunks_fetched: int
    chunks_reused: int
    retries: int
    origins: list = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def resolve_version(fetcher: Fetcher, product: str, channel: str) -> str:
    """The version a channel points at, from the first origin with a valid pointer. With
    trust, a pointer older than one seen before is refused."""
    pointer = fetcher.document(layout.channel_key(product, channel), Channel.from_bytes)
    if fetcher.trust is not None:
        fetcher.trust.anchor.check_channel(product, channel, pointer.serial)
    return pointer.version


def load_manifest(fetcher: Fetcher, product: str, version: str) -> Manifest:
    """The version's manifest from the first origin with a valid one, refused (UNSAFE_ENTRY)
    if any entry it names could write outside the game directory."""
    key = layout.manifest_key(product, version)
    m = manifest_doc.expect(fetcher.document(key, Manifest.from_bytes), product, version, fetcher.url_of(key))
    return check_manifest(m, fetcher.url_of(key))


def install(
    fetcher: Fetcher,
    product: str,
    version: str,
    dest: Path,
    seeds: Iterable[Path] = (),
    jobs: int = 8,
    only: set[str] | None = None,
    progress: Progress = ignore,
    on_total: Progress = ignore,
) -> InstallResult:
    """Install ``version`` into ``dest``; with ``only``, just make those paths right.
    ``on_total(bytes)`` is told how much will be written, ``progress(bytes)`` as it is."""
    started = time.monotonic()
    m = load_manifest(fetcher, product, version)
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"{dest}: cannot make the game directory ({exc.strerror})") from None
    inst = GameDir(dest)
    with inst.locked():
        previous = inst.installed()
        if previous is not None and previous.product != product:
            raise DestinationConflict(f"{dest} holds {previous.product} {previous.version}: "
                                      f"install {product} into another directory")
        # Repair names files found damaged: their size and mtime prove nothing.
        trusted = set() if only is not None else inst.trusted(m) | _unchanged(inst, previous, m)
        todo = [f for f in m.files if f.path not in trusted and (only is None or f.path in only)]
        job = ChunkJob(inst, m, todo, fetcher, progress)
        on_total(sum(f.size for f in todo))
        job.find_local(candidates(inst, m, todo, seeds))
        job.check_space()
        job.run(jobs)
        remove = stale_entries(previous, m) if only is None else []
        inst.swap_in(m, todo, remove, [o.url for o in fetcher.origins], fetcher.trust_id)
        remove_empty_dirs(inst, previous, m)
    stats = fetcher.stats
    return InstallResult(
        product=product,
        version=version,
        dest=str(dest),
        files=len(m.files),
        bytes=sum(f.size for f in m.files),
        files_written=len(todo),
        bytes_downloaded=job.downloaded,
        bytes_reused=job.reused,
        chunks_fetched=job.fetched,
        chunks_reused=job.chunks_reused,
        retries=fetcher.retried,
        origins=[s.to_dict() for s in stats],
        elapsed_s=round(time.monotonic() - started, 3),
    )


def _unchanged(inst: GameDir, old: Manifest | None, new: Manifest) -> set[str]:
    """Files of the version installed before that the new version keeps as they are."""
    if old is None or old.product != new.product:
        return set()
    before = {f.path: f for f in old.files}
    return {
        f.path
        for f in new.files
        if f.path in before and before[f.path].hash_sha256 == f.hash_sha256 and before[f.path].executable == f.executable
    } & inst.trusted(old)


def stale_entries(old: Manifest | None, new: Manifest) -> list[str]:
    """Files and links of the version installed before that the new one does not have."""
    if old is None:
        return []
    keep = {e.path for e in new.entries}
    return [e.path for e in old.entries if e.type != "dir" and e.path not in keep]


def _parents(path: str) -> set[str]:
    return {path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)}


def remove_empty_dirs(inst: GameDir, old: Manifest | None, new: Manifest) -> None:
    """Directories only the old version had, when nothing (a save, a mod) is left in them."""
    if old is None:
        return
    old_dirs = {e.path for e in old.entries if e.type == "dir"}.union(*(_parents(e.path) for e in old.entries))
    new_dirs = {e.path for e in new.entries}.union(*(_parents(e.path) for e in new.entries))
    for rel in sorted(old_dirs - new_dirs, key=lambda p: -p.count("/")):
        with contextlib.suppress(OSError):  # not empty, or already gone
            os.rmdir(inst.dest / rel)


def candidates(inst: GameDir, m: Manifest, todo: list[FileEntry], seeds: Iterable[Path]) -> list[Path]:
    """Files that may hold chunks we need: what is at the paths being (re)written, files
    in the destination that the version does not have, and every file of the seeds."""
    listed = {f.path for f in m.files}
    rewritten = {f.path for f in todo}
    found = [p for p in _walk_files(inst.dest, skip=STATE_DIR)
             if (rel := p.relative_to(inst.dest).as_posix()) in rewritten or rel not in listed]
    for seed in seeds:
        found.extend(_walk_files(Path(seed)))
    return [p for p in found if p.is_file() and not p.is_symlink()]


def _walk_files(root: Path, skip: str = "") -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and skip in dirnames:
            dirnames.remove(skip)
        out.extend(Path(dirpath) / n for n in filenames)
    return out


class ChunkJob:
    """The chunks that files being staged need, where each comes from (a staging file
    that already has it, a file on disk, an origin), and the check of each completed file."""

    def __init__(self, inst: GameDir, m: Manifest, todo: list[FileEntry], fetcher: Fetcher, progress: Progress):
        self.inst, self.m, self.todo, self.fetcher, self.progress = inst, m, todo, fetcher, progress
        self.lock = threading.Lock()
        # chunk id -> every (file, offset) it must be written at, still missing
        self.targets: dict[str, list[tuple[FileEntry, int]]] = defaultdict(list)
        self.refs: dict[str, ChunkRef] = {}
        self.missing: dict[str, int] = {}  # file path -> chunks still to write
        self.local: dict[str, tuple[Path, int]] = {}  # chunk id -> a file and offset holding it
        # One writer at a time per file: the kernel allows no more (a write holds the inode's
        # lock), and a thread waiting here sleeps where one waiting in the kernel spins.
        self.writing = {f.path: threading.Lock() for f in todo if len(f.chunks) > 1}
        self.staged = {f.path: inst.staging_path(f) for f in todo}
        self.downloaded = self.reused = self.fetched = self.chunks_reused = 0
        self.keep_staged()

    def keep_staged(self) -> None:
        """List the chunks to write; those a previous run already wrote to a staging
        file are kept."""
        self.inst.make_staging()
        present = set(os.listdir(self.inst.staging))
        for f in self.todo:
            staged = self.staged[f.path]
            fd = os.open(staged, os.O_RDONLY) if os.path.basename(staged) in present else None
            try:
                have = 0
                for c in f.chunks:
                    if fd is not None and codec.chunk_id(os.pread(fd, c.size, c.offset)) == c.id:
                        have += c.size
                        self.chunks_reused += 1  # written by an interrupted run: kept, not fetched
                    else:
                        self.targets[c.id].append((f, c.offset))
                        self.refs[c.id] = c
                        self.missing[f.path] = self.missing.get(f.path, 0) + 1
            finally:
                if fd is not None:
                    os.close(fd)
            if have:
                self.reused += have
                self.progress(have)

    def find_local(self, candidates: list[Path]) -> None:
        """Cut each candidate file with the version's chunk sizes and note where the
        chunks still needed are. Reads are windowed: any file size, bounded memory."""
        if not self.targets:
            return
        for path in candidates:
            try:
                self._index(path)
            except OSError:
                continue  # unreadable: it simply holds nothing we can use

    def _index(self, path: Path) -> None:
        with open(path, "rb") as fh:
            def read(offset: int, n: int) -> bytes:
                fh.seek(offset)
                return fh.read(n)

            cuts = serial_boundaries(read, os.fstat(fh.fileno()).st_size, self.m.params)
            for a, b in zip(cuts, cuts[1:]):
                cid = codec.chunk_id(read(a, b - a))
                if cid in self.targets and cid not in self.local:
                    self.local[cid] = (path, a)

    def check_space(self) -> None:
        need = sum(self.refs[cid].size * len(where) for cid, where in self.targets.items())
        free = shutil.disk_usage(self.inst.dest).free
        if need > free:
            raise InsufficientDiskSpace(
                f"{self.inst.dest}: {self.m.product} {self.m.version} needs {mib(need)} more, {mib(free)} are free"
            )

    def run(self, jobs: int) -> None:
        for f in self.todo:
            missing = self.missing.get(f.path, 0)
            if missing == 0 or len(f.chunks) > 1:  # a file of one chunk missing is made by its write
                fd = os.open(self.staged[f.path], os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    if os.fstat(fd).st_size != f.size:
                        os.ftruncate(fd, f.size)
                finally:
                    os.close(fd)
            if missing == 0:
                self._finish_file(f)
        self.fetcher.prefetch([layout.chunk_key(cid) for cid in self.targets if cid not in self.local])
        with cf.ThreadPoolExecutor(max(1, jobs)) as pool:
            # manifest order, so that files complete (and are placed) one after another;
            # small chunks in groups, as a task costs more than a small chunk's work
            futures = [pool.submit(self._deliver_all, group) for group in self._groups(jobs)]
            try:
                for fut in cf.as_completed(futures):
                    fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    def _groups(self, jobs: int) -> Iterator[list[str]]:
        """Chunks in manifest order, about 1 MiB a group but about four groups a job at
        least, so that a small download still has ``jobs`` requests in flight."""
        most = min(1 << 20, sum(self.refs[cid].size for cid in self.targets) // (4 * max(1, jobs)))
        group, size = [], 0
        for cid in self.targets:
            group.append(cid)
            size += self.refs[cid].size
            if size >= most:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _deliver_all(self, cids: list[str]) -> None:
        for cid in cids:
            self._deliver(cid)

    def _deliver(self, cid: str) -> None:
        ref = self.refs[cid]
        data = self._from_disk(cid, ref)
        if data is None:
            data = self.fetcher.chunk(ref)
            with self.lock:
                self.downloaded += ref.stored_size
                self.fetched += 1
        else:
            with self.lock:
                self.reused += ref.size * len(self.targets[cid])
                self.chunks_reused += 1
        for f, offset in self.targets[cid]:
            staged = self.staged[f.path]
            whole = os.O_CREAT | os.O_TRUNC if len(f.chunks) == 1 else 0  # a file of one chunk is made here
            with self.writing.get(f.path, contextlib.nullcontext()):
                fd = os.open(staged, os.O_WRONLY | whole, 0o644)
                try:
                    os.pwrite(fd, data, offset)
                finally:
                    os.close(fd)
            self.progress(ref.size)
            with self.lock:
                self.missing[f.path] -= 1
                done = self.missing[f.path] == 0
            if done:
                self._finish_file(f, data if ref.size == f.size else None)

    def _from_disk(self, cid: str, ref: ChunkRef) -> bytes | None:
        source = self.local.get(cid)
        if source is None:
            return None
        try:
            with open(source[0], "rb") as fh:
                fh.seek(source[1])
                data = fh.read(ref.size)
        except OSError:
            return None
        return data if codec.chunk_id(data) == cid else None  # it changed since: download

    def _finish_file(self, f: FileEntry, whole: bytes | None = None) -> None:
        """Check a completed staging file; ``whole`` is its content when one chunk is the
        whole file, which spares reading it back."""
        staged = self.staged[f.path]
        digest = hashlib.sha256(whole).hexdigest() if whole is not None else sha256_file(staged)
        if digest != f.hash_sha256:
            os.unlink(staged)  # never keep bytes that claim to be this file and are not
            raise FileHashMismatch(f"{f.path}: assembled bytes do not match hash_sha256 {f.hash_sha256}")
        os.chmod(staged, file_mode(f))
