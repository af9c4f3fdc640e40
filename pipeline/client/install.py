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
import itertools
import os
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import layout
from ..core.progress import Progress, ignore
from ..errors import DestinationConflict, NotFound
from ..formats.channel import Channel
from ..formats.manifest import Manifest
from .assemble import Assembly
from .fetch import Fetcher
from . import preload
from .game_dir import GameDir, check_manifest
from .keys import fetch_opened
from .reuse import candidates
from .tree import Tree


_NOT = bytes.maketrans(b"\x00\x01", b"\x01\x00")


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
    chunks_preloaded: int = 0  # read from what was pre-loaded here (opened, checked, written): not downloaded

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
    m, _ = fetch_manifest(fetcher, product, version)
    return check_manifest(m, fetcher.url_of(layout.manifest_key(product, version)))


def fetch_manifest(fetcher: Fetcher, product: str, version: str) -> tuple[Manifest, bytes]:
    """The version's manifest, not checked yet (``Tree`` and ``check_manifest`` check
    it), with its bytes as published (kept in the game directory as they are, not written
    again from the parsed manifest); an embargoed version's opened with its released key
    (CONTENT_LOCKED before release), the keys of its sealed chunks given to the fetcher."""
    return fetch_opened(fetcher, product, version)


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
    tree = Tree(m, fetcher.url_of(layout.manifest_key(product, version)))
    inst = GameDir.make(dest)
    dest = inst.dest
    with inst.locked():
        fetcher.staged = preload.staged(dest)  # what was pre-loaded here: read, not downloaded
        unlocked = fetcher.staged_chunks, fetcher.staged_bytes
        try:
            previous = inst.tree()
        except NotFound:
            previous = None
        if previous is not None and previous.m.product != product:
            raise DestinationConflict(f"{dest} holds {previous.m.product} {previous.m.version}: "
                                      f"install {product} into another directory")
        # Repair names files found damaged: their size and mtime prove nothing.
        kept = bytearray(len(tree)) if only is not None else _kept(inst, tree, previous)
        if only is None:
            todo = array("i", itertools.compress(range(len(tree)), kept.translate(_NOT)))
        else:
            todo = array("i", (i for i in range(len(tree)) if not kept[i] and tree.paths[i] in only))
        job = Assembly(inst, tree, todo, fetcher, progress, inst.stage(tree.paths[i] for i in todo))
        on_total(sum(map(tree.sizes.__getitem__, todo)))
        job.find_local(lambda: candidates(inst, tree.paths, (tree.paths[i] for i in todo), seeds))
        job.check_space()
        job.run(jobs)
        remove = stale_entries(previous, tree) if only is None else []
        mtimes = known_mtimes(tree, job, previous, kept, inst)
        inst.swap_in(tree, list(map(tree.paths.__getitem__, todo)), remove, [o.url for o in fetcher.origins],
                     fetcher.trust_id, mtimes, published)
        remove_empty_dirs(inst, previous, tree)
        if only is None:
            preload.finished(dest, version)
    stats = fetcher.stats
    unlocked = fetcher.staged_chunks - unlocked[0], fetcher.staged_bytes - unlocked[1]
    return InstallResult(
        product=product,
        version=version,
        dest=str(dest),
        files=len(tree),
        bytes=sum(tree.sizes),
        files_written=len(todo),
        bytes_downloaded=job.downloaded - unlocked[1],
        bytes_reused=job.reused,
        chunks_fetched=job.fetched - unlocked[0],
        chunks_reused=job.chunks_reused,
        retries=fetcher.retried,
        origins=[s.to_dict() for s in stats],
        elapsed_s=round(time.monotonic() - started, 3),
        chunks_preloaded=unlocked[0],
    )


def _kept(inst: GameDir, tree: Tree, old: Tree | None) -> bytearray:
    """For each file of ``tree``, whether it is on disk as it should be without reading
    it: recorded intact by the install of this version, or a file of the version
    installed before (``old``) that this one keeps as it is."""
    kept = inst.intact(tree)
    if old is not None and old.m.version != tree.m.version:
        intact = inst.intact(old)
        for i, j in tree.same_paths(old):
            if intact[j] and tree.execs[i] == old.execs[j] and tree.sha256(i) == old.sha256(j):
                kept[i] = 1
    return kept


def known_mtimes(tree: Tree, job: Assembly, old: Tree | None, kept: bytearray, inst: GameDir) -> array:
    """The mtime of each file of ``tree`` known without asking the disk: as written by
    ``job``, and for the files ``kept``, as recorded when they were found intact (by the
    install of ``tree``'s version or of ``old``'s: a file changed since is then not
    trusted by the next run); 0 elsewhere."""
    if job.every and 1 not in kept:  # every file written by the job
        return array("q", job.mtimes)
    out = array("q", bytes(8 * len(tree)))
    if 1 in kept:
        same = inst.mtimes(tree)
        if same is not None:
            for i in range(len(tree)):
                if kept[i]:
                    out[i] = same[i]
        elif old is not None and (recorded := inst.mtimes(old)) is not None:
            for i, j in tree.same_paths(old):
                if kept[i]:
                    out[i] = recorded[j]
    for j, i in enumerate(job.files):
        if job.mtimes[j]:
            out[i] = job.mtimes[j]
    return out


def stale_entries(old: Tree | None, new: Tree) -> list[str]:
    """Files and links of the version installed before that the new one does not have."""
    if old is None:
        return []
    keep = set(new.paths).union(p for p, _ in new.links).union(new.dirs)
    return [p for p in old.paths + [p for p, _ in old.links] if p not in keep]


def _dirs(t: Tree) -> set[str]:
    """Every directory holding an entry of ``t``, and its empty directories."""
    out: set[str] = set()
    for d in {p.rpartition("/")[0] for p in t.paths + [p for p, _ in t.links] + t.dirs} | set(t.dirs):
        while d and d not in out:
            out.add(d)
            d = d.rpartition("/")[0]
    return out


def remove_empty_dirs(inst: GameDir, old: Tree | None, new: Tree) -> None:
    """Directories only the old version had, when nothing (a save, a mod) is left in them."""
    if old is None:
        return
    for rel in sorted(_dirs(old) - _dirs(new), key=lambda p: -p.count("/")):
        with contextlib.suppress(OSError):  # not empty, or already gone
            os.rmdir(inst.dest / rel)
