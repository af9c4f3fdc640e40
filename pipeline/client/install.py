"""install: make a game directory hold exactly one published version.

1. Load the manifest from the first origin that has a valid one.
2. Find what is already right: files recorded intact (trusted by size and mtime) cost
   nothing; slices already written to staging files by an interrupted run are kept.
3. Find what is on disk (reuse.py): files in the destination that are not right yet (an
   older version, a damaged file) and ``seeds``; a whole file found is copied, a chunk
   found is read, neither is downloaded.
4. Refuse to start if the disk cannot hold what remains to be written.
5. Download the rest, many requests in flight, each chunk verified against its id before
   use and written to every staging file that holds a slice of it (assemble.py).
6. Sync the file system once, then swap the new files in, with the old entries set aside
   until the new version is recorded (see game_dir.py): a failure leaves the previous
   version as it was. A killed install resumes from its staging files.
"""

from __future__ import annotations

import contextlib
import os
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import layout
from ..core.progress import Progress, ignore
from ..errors import DestinationConflict, StoreUnavailable
from ..formats import manifest as manifest_doc
from ..formats.channel import Channel
from ..formats.manifest import Manifest
from .assemble import Assembly, mib
from .fetch import Fetcher
from .game_dir import GameDir, check_manifest
from .reuse import candidates


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
    return fetch_manifest(fetcher, product, version)[0]


def fetch_manifest(fetcher: Fetcher, product: str, version: str) -> tuple[Manifest, bytes]:
    """``load_manifest``, with the manifest's bytes as published (kept in the game
    directory as they are, not written again from the parsed manifest)."""
    key = layout.manifest_key(product, version)
    published: list[bytes] = []

    def parse(data: bytes, where: str) -> Manifest:
        m = Manifest.from_bytes(data, where)
        published[:] = [data]
        return m

    m = manifest_doc.expect(fetcher.document(key, parse), product, version, fetcher.url_of(key))
    return check_manifest(m, fetcher.url_of(key)), published[0]


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
    m, published = fetch_manifest(fetcher, product, version)
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
        job = Assembly(inst, m, todo, fetcher, progress, inst.stage(f.path for f in todo))
        on_total(sum(f.size for f in todo))
        job.find_local(candidates(inst, m, todo, seeds))
        job.check_space()
        job.run(jobs)
        remove = stale_entries(previous, m) if only is None else []
        recorded = inst.mtimes(previous) if previous is not None and trusted else None
        mtimes = known_mtimes(m, job, previous, recorded, trusted)
        inst.swap_in(m, todo, remove, [o.url for o in fetcher.origins], fetcher.trust_id, mtimes, published)
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


def known_mtimes(m: Manifest, job: Assembly, old: Manifest | None, recorded: array | None, kept: set[str]) -> array:
    """The mtime of each file of ``m`` known without asking the disk: as written by
    ``job``, and for the files ``kept`` of ``old``, as ``recorded`` when they were found
    intact (a file changed since then is not trusted by the next run); 0 elsewhere."""
    files = m.files
    out = array("q", bytes(8 * len(files)))
    if old is not None and recorded is not None and kept:
        before = iter(zip(old.files, recorded))
        o, mtime = next(before, (None, 0))
        for i, f in enumerate(files):  # both in path order: one walk, no table of paths
            while o is not None and o.path < f.path:
                o, mtime = next(before, (None, 0))
            if o is not None and o.path == f.path and f.path in kept:
                out[i] = mtime
    written = iter(zip(job.files, job.mtimes))
    w, mtime = next(written, (None, 0))
    for i, f in enumerate(files):  # the files written are some of the version's, in its order
        if f is w:
            out[i] = mtime
            w, mtime = next(written, (None, 0))
    return out


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
