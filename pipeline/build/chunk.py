"""chunk: cut an ingested build into content-addressed chunks and write its manifest.

Work is spread over an ``concurrent.futures.Executor`` (a Dask cluster in production, a
thread pool in small tests). Tasks read the source and write chunks themselves and
return only offsets, ids and sizes. Files smaller than the product's ``pack_below`` are
laid end to end in path order, one stream per version, and that stream is cut like a
large file; each packed file holds the slices of the chunks its bytes fall in. Other
files up to a segment go in batches; a large file, and the stream of packed files, are
cut in three steps so that all workers share them: every segment finds its chain of
boundaries, the chains are stitched into the serial one (see core.cdc), then every
segment hashes, compresses and stores its chunks, and hashes the packed files that start
in it (SHA-256) from the same read. A large file's SHA-256, which cannot be split, runs as
its own task meanwhile.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Union

from .. import layout
from ..core.cdc import boundaries, segment_starts, segment_window, stitch
from ..core.chunk_params import ChunkParams
from ..core.parallel import batches
from ..core.progress import Progress, ignore
from ..errors import SourceChanged, VersionConflict
from ..formats import inventory, manifest
from ..formats.manifest import Chunk, Manifest
from ..storage import Location, Locations, WriteStore, open_store
from . import products
from .embargo import Sealing, existing_manifest, save_manifest, store_chunk
from .source_ranges import fingerprint, read_joined, sha256_range
SMALL_BATCH_BYTES = 32 << 20
SMALL_BATCH_FILES = 256


@dataclass(frozen=True)
class ChunkResult:
    product: str
    version: str
    files: int
    bytes: int
    chunks: int
    unique_chunks: int
    chunks_new: int
    chunks_reused: int
    stored_bytes: int
    stored_bytes_new: int
    dedup_ratio: float
    elapsed_s: float
    created: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _File:
    """A file to chunk: where its bytes are (``name`` below ``source``, or ``source``
    itself, from ``base``) and how many; ``local``, its path when it is on this machine
    (a location per file costs more than reading a small file)."""

    path: str
    source: Location
    name: str
    base: int
    size: int
    local: str = ""

    @property
    def loc(self) -> Location:
        return self.source.child(self.name) if self.name else self.source

    def piece(self, offset: int, length: int) -> tuple[str | Location, int, int]:
        return self.local or self.loc, self.base + offset, length

    def view(self, offset: int, length: int) -> memoryview:
        return read_joined([self.piece(offset, length)])

    def window(self, offset: int, length: int) -> "_File":
        return self


@dataclass(frozen=True)
class _Stream:
    """Files end to end, none empty: ``files[i]`` starts at ``starts[i]`` of a stream of
    ``size`` bytes. A window of it holds only the files that overlap the window, so that
    a task is sent a few thousand files, not all of them."""

    files: tuple[_File, ...]
    starts: tuple[int, ...]
    size: int
    path: str = "the packed files"

    @classmethod
    def of(cls, files: list[_File]) -> "_Stream":
        starts = tuple(itertools.accumulate((f.size for f in files), initial=0))
        return cls(tuple(files), starts[:-1], starts[-1])

    def _at(self, offset: int) -> int:
        """The number of the file that holds the stream's byte at ``offset``."""
        return bisect.bisect_right(self.starts, offset) - 1

    def window(self, offset: int, length: int) -> "_Stream":
        lo, hi = self._at(offset), bisect.bisect_left(self.starts, offset + length)
        return _Stream(self.files[lo:hi], self.starts[lo:hi], self.size)

    def view(self, offset: int, length: int) -> memoryview:
        pieces = []
        end = offset + length
        i = self._at(offset)
        while offset < end:
            f, start = self.files[i], self.starts[i]
            n = min(start + f.size, end) - offset
            pieces.append(f.piece(offset - start, n))
            offset += n
            i += 1
        return read_joined(pieces)

    def end_of_file_at(self, offset: int) -> int:
        """Where the file holding the byte just before ``offset`` ends."""
        i = self._at(offset - 1)
        return self.starts[i] + self.files[i].size


_Source = Union[_File, _Stream]  # what the segment tasks cut


def chunk(
    store: WriteStore,
    product: str,
    version: str,
    executor: cf.Executor,
    progress: Progress = ignore,
    locations: Locations = Locations(),
    sealing: Sealing | None = None,
) -> ChunkResult:
    """Chunk an ingested version; ``locations`` gives the settings of its source location,
    ``sealing`` what an embargoed build seals (see build.embargo)."""
    started = time.monotonic()
    inv = inventory.load(store, product, version)
    if store.has(layout.manifest_key(product, version)):
        existing = existing_manifest(store, product, version, sealing)
        if not inv.same_content(existing):
            raise VersionConflict(f"{product} {version}: the manifest does not match the inventory")
        return _result(existing, set(), 0, started, created=False)

    params, cut = cut_files(store, inv, executor, progress, locations, sealing)
    for e in inv.files:
        if cut.digests[e.path] != e.hash_sha256:
            raise SourceChanged(f"{inv.source_url}: {e.path} changed since it was ingested")
    return finish(store, inv, params, cut, started, sealing)


def cut_files(store: WriteStore, inv: inventory.Inventory, executor: cf.Executor, progress: Progress,
              locations: Locations, sealing: Sealing | None = None) -> tuple[ChunkParams, "_Cut"]:
    """Read every file of ``inv`` once: its chunks stored, its SHA-256 computed.

    A large file's SHA-256 is a read of its own, beside the segments' reads. With no hash
    in the inventory to compare it with (``run`` reading a build once), the file must not
    change meanwhile: its fingerprint is taken before and after (SOURCE_CHANGED). So is
    that of a packed file whose bytes two segments read, each hashing what it stores."""
    settings = products.settings(store, inv.product)
    params = settings.params
    data = inv.data
    source = locations.resolve(data.url) if data.url else store.location.child(data.key)
    root = source.local_path + "/" if source.is_local else ""
    if data.layout == "directory":
        files = [_File(e.path, source, e.path, 0, e.size, root and root + e.path) for e in inv.files]
    else:
        files = [_File(e.path, source, "", e.offset, e.size, root and root[:-1]) for e in inv.files]
    segment = params.segment
    watched = {f.path: f.loc for f, e in zip(files, inv.files) if f.size > segment and not e.hash_sha256}
    before = {path: fingerprint(loc) for path, loc in watched.items()}
    cut = _run(executor, store.location, params, settings.packing_below, files, progress, sealing)
    for path, loc in watched.items():
        if fingerprint(loc) != before[path]:
            raise SourceChanged(f"{inv.source_url}: {path} changed while it was read")
    for f, seen in cut.straddlers:
        if fingerprint(f.loc) != seen:
            raise SourceChanged(f"{inv.source_url}: {f.path} changed while it was read")
    return params, cut


def finish(store: WriteStore, inv: inventory.Inventory, params: ChunkParams, cut: "_Cut",
           started: float, sealing: Sealing | None = None) -> ChunkResult:
    """Write the version's manifest from its cut files (sealed, for an embargoed build)."""
    m = manifest.build(inv, params, cut.own, cut.pack, cut.pack_below)
    created = save_manifest(store, m, sealing)
    if inv.data.key:
        store.delete(inv.data.key)  # the staged pack is only needed until the manifest exists
    return _result(m, cut.new_ids, cut.new_stored, started, created)


def _result(m: Manifest, new_ids: set[str], new_stored: int, started: float, created: bool) -> ChunkResult:
    t = m.totals()
    return ChunkResult(
        product=m.product,
        version=m.version,
        files=t["files"],
        bytes=t["bytes"],
        chunks=t["chunks"],
        unique_chunks=t["unique_chunks"],
        chunks_new=len(new_ids),
        chunks_reused=t["unique_chunks"] - len(new_ids),
        stored_bytes=t["stored_bytes"],
        stored_bytes_new=new_stored,
        dedup_ratio=round(t["bytes"] / t["unique_bytes"], 4) if t["unique_bytes"] else 1.0,
        elapsed_s=round(time.monotonic() - started, 3),
        created=created,
    )


# -- tasks: top-level functions, so that any executor can ship them ---------------------

_Stored = tuple[int, int, str, int, bool, str]  # offset, size, id, stored size, newly written, sealed with


def _store_chunk(store: WriteStore, data, offset: int, sealing: Sealing | None) -> _Stored:
    cid, stored_size, new, key_id = store_chunk(store, data, sealing)
    return offset, len(data), cid, stored_size, new, key_id


def chunk_small_files(repo: Location, params: ChunkParams, files: list[_File],
                      sealing: Sealing | None = None) -> list[tuple[str, str, list[_Stored]]]:
    """Cut, hash and store whole files, each read once: [(path, sha256, chunks)]."""
    store = open_store(repo)
    out = []
    for f in files:
        view = f.view(0, f.size)
        cuts = boundaries(view, 0, params, at_eof=True)
        stored = [_store_chunk(store, view[a:b], a, sealing) for a, b in zip(cuts, cuts[1:])]
        out.append((f.path, hashlib.sha256(view).hexdigest(), stored))
    return out


def cut_segment(repo: Location, f: _Source, seg: int, end: int, params: ChunkParams,
                sealing: Sealing | None = None) -> tuple[list[int], list[_Stored], list[tuple[str, str]]]:
    """One read of segment ``[seg, end)`` of a file or of the stream: the chain of boundaries
    over its window (see core.cdc), the chain's chunks that start in the segment stored,
    and the packed files that start in it hashed (read to their end). Stored before the
    chains are stitched: the coordinator stores again the few chunks where the chain had
    not met the one coming from the left by the segment's start."""
    store = open_store(repo)
    lo, n = segment_window(f.size, seg, params)
    hashed = _starting_in(f, seg, end)
    reach = max([lo + n] + [s + g.size for g, s in hashed])
    view = f.view(lo, reach - lo)
    chain = boundaries(view[:n], lo, params, at_eof=lo + n == f.size)
    stored = [_store_chunk(store, view[a - lo : b - lo], a, sealing) for a, b in zip(chain, chain[1:]) if seg <= a < end]
    digests = [(g.path, hashlib.sha256(view[s - lo : s - lo + g.size]).hexdigest()) for g, s in hashed]
    return chain, stored, digests


def store_range(repo: Location, f: _Source, bounds: list[int],
                sealing: Sealing | None = None) -> tuple[list[_Stored], list[tuple[str, str]]]:
    """Store the chunks between consecutive ``bounds``; of a stream, hash every file they
    overlap, for the coordinator to check against the digests of the first read."""
    store = open_store(repo)
    first, last = bounds[0], bounds[-1]
    files = []
    if isinstance(f, _Stream):
        files = [(f.files[k], f.starts[k]) for k in range(f._at(first), f._at(last - 1) + 1)]
        first, last = min(first, files[0][1]), max(last, files[-1][1] + files[-1][0].size)
    view = f.view(first, last - first)
    stored = [_store_chunk(store, view[a - first : b - first], a, sealing) for a, b in zip(bounds, bounds[1:])]
    return stored, [(g.path, hashlib.sha256(view[s - first : s - first + g.size]).hexdigest()) for g, s in files]


def _starting_in(f: _Source, seg: int, end: int) -> list[tuple[_File, int]]:
    """The packed files that start in ``[seg, end)`` of the stream, and where."""
    if not isinstance(f, _Stream):
        return []
    i = bisect.bisect_left(f.starts, seg)
    return [(f.files[k], f.starts[k]) for k in range(i, bisect.bisect_left(f.starts, end))]


def file_sha256(f: _File) -> str:
    return sha256_range(f.loc, f.base, f.size)


# -- scheduling ----------------------------------------------------------------------


@dataclass
class _Cut:
    """What reading the files gave: the chunks of each file cut on its own (``own``), of
    the stream of packed files (``pack``), every file's SHA-256."""

    pack_below: int = 0
    own: dict[str, list[Chunk]] = field(default_factory=dict)
    pack: list[Chunk] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    new_ids: set[str] = field(default_factory=set)
    new_stored: int = 0
    straddlers: list[tuple[_File, tuple]] = field(default_factory=list)  # and their fingerprints

    def chunks(self, stored: list[_Stored]) -> list[Chunk]:
        for _, _, cid, stored_size, new, _ in stored:
            if new and cid not in self.new_ids:
                self.new_ids.add(cid)
                self.new_stored += stored_size
        return [Chunk(cid, n, s, k) for _, n, cid, s, _, k in stored]


@dataclass
class _Segmented:
    """A large file, or the stream, being cut by segments."""

    file: _Source
    starts: list[int]
    chains: dict[int, list[int]] = field(default_factory=dict)
    parts: dict[int, list[_Stored]] = field(default_factory=dict)  # by segment, as first stored
    final: dict[int, list[_Stored]] = field(default_factory=dict)  # by segment, on the stitched chain

    def ends(self) -> list[int]:
        return self.starts[1:] + [self.file.size]


def _run(executor: cf.Executor, repo: Location, params: ChunkParams, pack_below: int, files: list[_File],
         progress: Progress, sealing: Sealing | None = None) -> _Cut:
    cut = _Cut(pack_below)
    pending: dict[cf.Future, tuple] = {}
    sealed = [sealing] if sealing else []  # a plain build's tasks are called as they always were

    def submit(tag: tuple, fn, *args):
        pending[executor.submit(fn, *args)] = tag

    packed: list[_File] = []
    large: list[_Source] = []
    small: list[_File] = []
    segment = params.segment
    for f in files:
        (packed if 0 < f.size < pack_below else large if f.size > segment else small).append(f)
    if packed:
        stream = _Stream.of(packed)
        large.insert(0, stream)
        cut.straddlers = _near_segment_starts(stream, params)
    # Large files first, the small batches fill the workers meanwhile.
    for source in large:
        task = _Segmented(source, segment_starts(source.size, params))
        for seg, end in zip(task.starts, task.ends()):
            window = source.window(*segment_window(source.size, seg, params))
            submit(("cut", task, seg), cut_segment, repo, window, seg, end, params, *sealed)
        if isinstance(source, _File):
            submit(("sha", task), file_sha256, source)
    for batch in batches(small, lambda f: f.size, SMALL_BATCH_BYTES, SMALL_BATCH_FILES):
        submit(("small", sum(f.size for f in batch)), chunk_small_files, repo, params, batch, *sealed)

    try:
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                tag = pending.pop(fut)
                result = fut.result()
                kind = tag[0]
                if kind == "small":
                    for path, digest, stored in result:
                        cut.digests[path] = digest
                        cut.own[path] = cut.chunks(stored)
                    progress(tag[1])
                elif kind == "sha":
                    cut.digests[tag[1].file.path] = result
                elif kind == "cut":
                    task, seg = tag[1], tag[2]
                    task.chains[seg], task.parts[seg], digests = result
                    cut.digests.update(digests)
                    progress(sum(s[1] for s in task.parts[seg]))
                    if len(task.chains) == len(task.starts):
                        _stitch(submit, repo, params, task, *sealed)
                elif kind == "again":
                    task, seg = tag[1], tag[2]
                    stored, digests = result
                    if any(cut.digests[path] != digest for path, digest in digests):
                        raise SourceChanged(f"{next(p for p, d in digests if cut.digests[p] != d)} changed while it was read")
                    first = {(o, n): new for o, n, _, _, new, _ in task.parts[seg]}
                    task.final[seg] = [(o, n, i, st, new or first.get((o, n), False), k)
                                       for o, n, i, st, new, k in stored]
                if kind in ("cut", "again") and len(task.final) == len(task.starts):
                    whole = cut.chunks([c for s in task.starts for c in task.final[s]])
                    if isinstance(task.file, _Stream):
                        cut.pack = whole
                    else:
                        cut.own[task.file.path] = whole
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    return cut


def _stitch(submit, repo: Location, params: ChunkParams, task: _Segmented, sealing: Sealing | None = None) -> None:
    """The serial chain from the segments' chains; a segment whose stored chunks are not
    the chain's (its chain met the left one after the segment's start, or never) has the
    chain's chunks stored again (those already stored are only found)."""
    f = task.file
    bounds = stitch([task.chains[s] for s in task.starts], lambda off, n: bytes(f.view(off, n)), f.size, params)
    for seg, end in zip(task.starts, task.ends()):
        lo, hi = bisect.bisect_left(bounds, seg), bisect.bisect_left(bounds, end)
        if [(o, o + n) for o, n, *_ in task.parts[seg]] == list(zip(bounds[lo:hi], bounds[lo + 1 : hi + 1])):
            task.final[seg] = task.parts[seg]
        elif hi > lo:
            part = f.window(bounds[lo], bounds[hi] - bounds[lo])
            submit(("again", task, seg), store_range, repo, part, bounds[lo : hi + 1], *([sealing] if sealing else []))
        else:
            task.final[seg] = []


def _near_segment_starts(stream: _Stream, params: ChunkParams) -> list[tuple[_File, tuple]]:
    """The packed files within a maximum chunk of a segment's start, with their
    fingerprints: their hash and the chunks that hold their bytes can come from two
    reads, so they must not change in between (checked once all is read)."""
    near: dict[int, _File] = {}
    for seg in segment_starts(stream.size, params)[1:]:
        for k in range(stream._at(max(0, seg - params.max_size)), stream._at(min(stream.size, seg + params.max_size) - 1) + 1):
            near[k] = stream.files[k]
    return [(g, fingerprint(g.loc)) for _, g in sorted(near.items())]
