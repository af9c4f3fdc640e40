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
its own task meanwhile. Every task reads a window at a time (see build.cutting), so that a
worker holds a few MB whatever the segment's size; files are sent to tasks as columns
(paths, sizes, offsets), never as an object per file.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import hashlib
import time
from array import array
from dataclasses import dataclass, field

from .. import layout
from ..core.cdc import segment_starts, segment_window, stitch
from ..core.chunk_params import ChunkParams
from ..core.parallel import batches
from ..core.progress import Progress, ignore
from ..errors import SourceChanged, VersionConflict
from ..formats import inventory, manifest
from ..formats.manifest import Chunk, Manifest
from ..storage import Location, Locations, WriteStore, open_store
from . import products
from .embargo import Sealing, existing_manifest, save_manifest, store_chunk
from .cutting import Digests, Spans, buffer_for, chunking_task, cut_range, store_chunks
from .source_ranges import fingerprint, sha256_range
from .stream import Files
SMALL_BATCH_BYTES = 32 << 20
SMALL_BATCH_FILES = 256
DIGEST = inventory.DIGEST
EMPTY_SHA256 = hashlib.sha256().digest()


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
    if cut.digests != inv.hashes:
        i = next(i for i in range(inv.file_count) if cut.digest(i) != inv.hashes[DIGEST * i : DIGEST * i + DIGEST])
        raise SourceChanged(f"{inv.source_url}: {cut.paths[i]} changed since it was ingested")
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
    directory = data.layout == "directory"
    paths, sizes, bases = inv.file_paths(), inv.sizes, inv.offsets
    pack_below, segment = settings.packing_below, params.segment
    packed, large, small = array("q"), array("q"), array("q")  # file numbers: 8 bytes each
    for i, size in enumerate(sizes):
        (packed if 0 < size < pack_below else large if size > segment else small).append(i)
    stream = Files.of(source, directory, paths, bases, sizes, packed, packed=True)
    del packed
    each = [Files.of(source, directory, paths, bases, sizes, [i]) for i in large]
    batched = [Files.of(source, directory, paths, bases, sizes, batch)
               for batch in batches(small, sizes.__getitem__, SMALL_BATCH_BYTES, SMALL_BATCH_FILES)]
    watched = [(f.paths[0], f.loc(0)) for f in each] if not inv.hashed else []
    before = [fingerprint(loc) for _, loc in watched]
    cut = _Cut(pack_below, paths, bytearray(DIGEST * len(paths)))
    _run(executor, store.location, params, stream, each, batched, cut, progress, sealing)
    for (path, loc), seen in zip(watched, before):
        if fingerprint(loc) != seen:
            raise SourceChanged(f"{inv.source_url}: {path} changed while it was read")
    near, fingerprints = cut.straddlers
    for k, was in zip(near, fingerprints):
        if hash(fingerprint(stream.loc(k))) != was:
            raise SourceChanged(f"{inv.source_url}: {stream.paths[k]} changed while it was read")
    assert cut.hashed == len(paths), "a file was not hashed"
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


@chunking_task
def chunk_small_files(repo: Location, params: ChunkParams, files: Files,
                      sealing: Sealing | None = None) -> list[tuple[str, int, bytes, list[_Stored]]]:
    """Cut, hash and store whole files, each read once: [(path, number, SHA-256, chunks)]."""
    store = open_store(repo)
    buf = buffer_for(params, max(files.sizes, default=0))  # one for the batch
    out = []
    for k in range(len(files.paths)):
        f = files.one(k)
        number = f.numbers[0]
        _, stored, digests = cut_range(f, 0, f.size, (0, f.size), params,
                                       lambda data, a: _store_chunk(store, data, a, sealing),
                                       Spans([number], [0], [f.size]), buf)
        out.append((f.paths[0], number, bytes(digests.digests) if f.size else EMPTY_SHA256, stored))
    return out


@chunking_task
def cut_segment(repo: Location, f: Files, seg: int, end: int, params: ChunkParams,
                sealing: Sealing | None = None) -> tuple[list[int], list[_Stored], Digests]:
    """One read of segment ``[seg, end)`` of a file or of the stream: the chain of boundaries
    over its window (see core.cdc), the chain's chunks that start in the segment stored,
    and the packed files that start in it hashed (read to their end). Stored before the
    chains are stitched: the coordinator stores again the few chunks where the chain had
    not met the one coming from the left by the segment's start."""
    store = open_store(repo)
    lo, n = segment_window(f.size, seg, params)
    return cut_range(f, lo, lo + n, (seg, end), params, lambda data, a: _store_chunk(store, data, a, sealing),
                     f.spans(seg, end))


@chunking_task
def store_range(repo: Location, f: Files, bounds: list[int], params: ChunkParams,
                sealing: Sealing | None = None) -> tuple[list[_Stored], Digests]:
    """Store the chunks between consecutive ``bounds``; of the stream, hash every file they
    overlap, for the coordinator to check against the digests of the first read."""
    store = open_store(repo)
    return store_chunks(f, bounds, params, lambda data, a: _store_chunk(store, data, a, sealing),
                        f.spans(bounds[0], bounds[-1], overlapping=True))


def file_sha256(f: Files) -> bytes:
    return bytes.fromhex(sha256_range(f.loc(0), f.bases[0], f.size))


# -- scheduling ----------------------------------------------------------------------


@dataclass
class _Cut:
    """What reading the files gave: the chunks of each file cut on its own (``own``), of
    the stream of packed files (``pack``), every file's SHA-256 (``digests``, by number:
    the build's files are ``paths``)."""

    pack_below: int
    paths: list[str]
    digests: bytearray
    hashed: int = 0
    own: dict[str, list[Chunk]] = field(default_factory=dict)
    pack: list[Chunk] = field(default_factory=list)
    new_ids: set[str] = field(default_factory=set)
    new_stored: int = 0
    straddlers: tuple[list[int], array] = field(default_factory=lambda: ([], array("q")))

    def watch(self, stream: Files, start: int, params: ChunkParams) -> None:
        """Fingerprint the packed files within a maximum chunk of a segment's ``start`` (8
        bytes each: the fingerprint's hash), before any task reads them: their digest
        and the chunks that hold their bytes can come from two reads, so they must not
        change in between (checked once all is read). Taken as the tasks are sent, while
        the first ones run."""
        near, fingerprints = self.straddlers
        first = stream._at(max(0, start - params.max_size))
        if near and near[-1] >= first:  # a file as long as a segment, seen at the start before
            first = near[-1] + 1
        for k in range(first, stream._at(min(stream.size, start + params.max_size) - 1) + 1):
            near.append(k)
            fingerprints.append(hash(fingerprint(stream.loc(k))))

    def digest(self, number: int) -> bytes:
        return bytes(self.digests[DIGEST * number : DIGEST * number + DIGEST])

    def record(self, d: Digests) -> None:
        """The digests of files read."""
        numbers, n = d.numbers, len(d.numbers)
        if n and numbers[-1] - numbers[0] == n - 1:  # a run of files in a row: the usual case
            self.digests[DIGEST * numbers[0] : DIGEST * (numbers[0] + n)] = d.digests
        else:
            for i, number in enumerate(numbers):
                self.digests[DIGEST * number : DIGEST * number + DIGEST] = d.digests[DIGEST * i : DIGEST * i + DIGEST]
        self.hashed += n

    def changed(self, d: Digests) -> list[int]:
        """The files whose digests in ``d`` are not the ones recorded."""
        return [number for i, number in enumerate(d.numbers)
                if self.digest(number) != d.digests[DIGEST * i : DIGEST * i + DIGEST]]

    def chunks(self, stored: list[_Stored]) -> list[Chunk]:
        for _, _, cid, stored_size, new, _ in stored:
            if new and cid not in self.new_ids:
                self.new_ids.add(cid)
                self.new_stored += stored_size
        return [Chunk(cid, n, s, k) for _, n, cid, s, _, k in stored]


@dataclass
class _Segmented:
    """A large file, or the stream, being cut by segments."""

    file: Files
    starts: list[int]
    chains: dict[int, list[int]] = field(default_factory=dict)
    parts: dict[int, list[_Stored]] = field(default_factory=dict)  # by segment, as first stored
    final: dict[int, list[_Stored]] = field(default_factory=dict)  # by segment, on the stitched chain

    def ends(self) -> list[int]:
        return self.starts[1:] + [self.file.size]


def _run(executor: cf.Executor, repo: Location, params: ChunkParams, stream: Files, large: list[Files],
         small: list[Files], cut: _Cut, progress: Progress, sealing: Sealing | None = None) -> None:
    pending: dict[cf.Future, tuple] = {}
    sealed = [sealing] if sealing else []  # a plain build's tasks are called as they always were

    def submit(tag: tuple, fn, *args):
        pending[executor.submit(fn, *args)] = tag

    if stream.size:
        large = [stream] + large
    # Large files first, the small batches fill the workers meanwhile.
    for source in large:
        task = _Segmented(source, segment_starts(source.size, params))
        for seg, end in zip(task.starts, task.ends()):
            if source.packed and end < source.size:  # before this segment's task reads the next one's start
                cut.watch(source, end, params)
            window = source.window(*segment_window(source.size, seg, params))
            submit(("cut", task, seg), cut_segment, repo, window, seg, end, params, *sealed)
        if not source.packed:
            submit(("sha", task), file_sha256, source)
    for batch in small:
        submit(("small", batch.size), chunk_small_files, repo, params, batch, *sealed)

    try:
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                tag = pending.pop(fut)
                result = fut.result()
                kind = tag[0]
                if kind == "small":
                    for path, number, digest, stored in result:
                        cut.record(Digests(array("q", [number]), bytearray(digest)))
                        cut.own[path] = cut.chunks(stored)
                    progress(tag[1])
                elif kind == "sha":
                    cut.record(Digests(tag[1].file.numbers, bytearray(result)))
                elif kind == "cut":
                    task, seg = tag[1], tag[2]
                    task.chains[seg], task.parts[seg], digests = result
                    cut.record(digests)
                    progress(sum(s[1] for s in task.parts[seg]))
                    if len(task.chains) == len(task.starts):
                        _stitch(submit, repo, params, task, *sealed)
                elif kind == "again":
                    task, seg = tag[1], tag[2]
                    stored, digests = result
                    changed = cut.changed(digests)
                    if changed:
                        raise SourceChanged(f"{cut.paths[changed[0]]} changed while it was read")
                    first = {(o, n): new for o, n, _, _, new, _ in task.parts[seg]}
                    task.final[seg] = [(o, n, i, st, new or first.get((o, n), False), k)
                                       for o, n, i, st, new, k in stored]
                if kind in ("cut", "again") and len(task.final) == len(task.starts):
                    whole = cut.chunks([c for s in task.starts for c in task.final[s]])
                    if task.file.packed:
                        cut.pack = whole
                    else:
                        cut.own[task.file.paths[0]] = whole
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


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
            submit(("again", task, seg), store_range, repo, part, bounds[lo : hi + 1], params,
                   *([sealing] if sealing else []))
        else:
            task.final[seg] = []
