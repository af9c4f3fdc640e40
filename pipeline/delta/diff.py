"""diff: the update plan from one version of a product to another, with its patches.

For each file of the new version: unchanged (keep), found in the old version under
another path (copy), or changed. A changed file whose chunks all exist in the old
version costs nothing to fetch; otherwise its best source in the old version (the same
path, or else the file it shares the most chunk bytes with: a renamed-and-edited file) is
diffed with the engines worth trying, each patch is checked by applying it, and the
smallest is kept if it is smaller than fetching the file's new chunks. Small files packed
into shared chunks are planned the same way: fetching one costs the stored bytes of the
chunks it has slices of, each chunk counted once in the plan however many files need it,
and a patch is dropped where every chunk it would save is fetched for another file anyway.
Patches are stored content-addressed; the plan is written last, then the product's plan
index.

To an embargoed version not released yet (or from one), the plan and its patches are
sealed with that version's content key (docs/format.md, "Sealed objects"): a patch is
sealed bound to its plan's name and stored under the BLAKE3 of its sealed bytes, so the
plan names exactly what players download; the plan is sealed like a manifest. Sealed
chunks are read with the keys given (the release side's, and those released).

Pieces: a file up to 16 MiB is patched whole. A file up to 64 MiB is patched in pieces of
at most 16 MiB, each against the part of the old file it came from (found through shared
chunks, else in proportion) widened by 2 MiB on each side: HDiffPatch's time goes mostly
into a suffix array of the old bytes, so pieces cost no more in all, run on as many
workers as there are, and measured on native libraries make patches within 1% of one
whole-file patch. Larger files are patched in 32 MiB segments against windows of 96 MiB,
with zstd alone (a suffix array over every window would cost minutes per GB). Every piece
is a task of its own, the largest first, so that the workers finish together. Making or
applying a patch needs at most the old window plus the new piece, about 128 MiB plus the
engine's state, whatever the file size.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass
from typing import cast

from .. import layout
from ..core import codec
from ..core.parallel import as_completed
from ..core.progress import Progress, ignore
from ..formats import plan as plan_doc
from ..formats import release as release_doc
from ..formats import sealed
from ..formats.content_key import ContentKey
from ..formats.manifest import ChunkRef, FileEntry, Manifest
from ..formats.plan import FileOp, PatchSegment, Plan
from ..formats.plan_index import PlanIndex, PlanSummary
from ..storage import REFRESH_AGE, Location, WriteStore, open_store
from ..storage.content import read_file_range
from ..errors import ContentLocked, NotFound, PatchFailed
from . import engines

PIECE = 16 << 20  # files up to this are patched whole, larger ones in pieces of at most this
PIECE_MARGIN = 2 << 20  # the old bytes a piece is diffed against: where it came from, this much wider
ZSTD_ONLY_ABOVE = 64 << 20  # larger files: zstd alone, in segments against wide windows
SEGMENT = 32 << 20
SEGMENT_MARGIN = 32 << 20
NEAR_FLOOR = 1 / 200  # a zstd patch under 0.5 % of the file is not worth a slower engine
MIN_SOURCE = 8  # zstd takes no shorter prefix, and a few bytes of source cannot make a patch pay
SEGMENT_ZSTD_LEVEL = 9


@dataclass(frozen=True)
class DiffResult:
    product: str
    from_version: str
    to_version: str
    files_kept: int
    files_copied: int
    files_patched: int
    files_fetched: int
    entries_removed: int
    delta_download_bytes: int
    chunk_download_bytes: int
    full_download_bytes: int
    required_disk_space_bytes: int
    created: bool
    elapsed_s: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def diff(store: WriteStore, product: str, from_version: str, to_version: str, executor: cf.Executor,
         progress: Progress = ignore, keys: sealed.KeyFinder | None = None) -> DiffResult:
    """The plan ``from_version`` -> ``to_version``; ``keys``: the release side's content
    keys, which open embargoed versions (CONTENT_LOCKED without)."""
    started = time.monotonic()
    key = layout.plan_key(product, from_version, to_version)
    find = release_doc.key_finder(store, product, keys)
    if store.has(key):
        try:
            return _result(plan_doc.load(sealed.Opened(store, find), product, from_version, to_version), False,
                           started)
        except ContentLocked:
            raise ContentLocked(f"plan {from_version} -> {to_version} of {product} is sealed, and no content key at "
                                "hand opens it (the release side's keys: --keys DIR)") from None
    old = sealed.load_manifest(store, product, from_version, find)
    new = sealed.load_manifest(store, product, to_version, find)
    seal = _sealing_key(store, product, (to_version, from_version), find)
    plan = make_plan(store, old, new, executor, progress, find, seal)
    data = plan.to_bytes()
    created = store.put_if_absent(key, sealed.seal(seal, key, data) if seal else data)
    write_index(store, product, find)
    return _result(plan, created, started)


def _sealing_key(store: WriteStore, product: str, versions: tuple[str, ...],
                 find: sealed.KeyFinder) -> ContentKey | None:
    """The content key of the first of ``versions`` that is embargoed and not released
    yet: what a plan between them is sealed with (None: a plain plan)."""
    for version in versions:
        key_id = release_doc.sealed_key_id(store, product, version)
        if key_id and not release_doc.is_released(store, product, key_id):
            return find(key_id)
    return None


def write_index(store: WriteStore, product: str, find: sealed.KeyFinder | None = None) -> PlanIndex:
    """Rebuild the product's plan index from the plans present: concurrent diffs of one
    product each rewrite it whole, so the last to finish lists every plan. A sealed plan
    no key at hand opens keeps the summary the index had for it."""
    summaries = []
    listed: dict[tuple[str, str], PlanSummary] | None = None
    reader = sealed.Opened(store, find or release_doc.key_finder(store, product))
    for key in store.list(layout.plans_prefix(product)):
        pair = layout.plan_pair_of(key)
        if pair:
            try:
                p = plan_doc.load(reader, product, *pair)
            except ContentLocked:
                if listed is None:
                    listed = _listed(store, product)
                if pair in listed:
                    summaries.append(listed[pair])
                continue
            summaries.append(PlanSummary(p.from_version, p.to_version, p.delta_download_bytes))
    index = PlanIndex(product, tuple(summaries))
    store.put(layout.plan_index_key(product), index.to_bytes())
    return index


def _listed(store: WriteStore, product: str) -> dict[tuple[str, str], PlanSummary]:
    try:
        index = PlanIndex.from_bytes(store.get(layout.plan_index_key(product)), layout.plan_index_key(product))
    except NotFound:
        return {}
    return {(s.from_version, s.to_version): s for s in index.plans}


def _result(plan: Plan, created: bool, started: float) -> DiffResult:
    return DiffResult(
        product=plan.product,
        from_version=plan.from_version,
        to_version=plan.to_version,
        files_kept=plan.count("keep"),
        files_copied=plan.count("copy"),
        files_patched=plan.count("patch"),
        files_fetched=plan.count("chunks"),
        entries_removed=len(plan.remove),
        delta_download_bytes=plan.delta_download_bytes,
        chunk_download_bytes=plan.chunk_download_bytes,
        full_download_bytes=plan.full_download_bytes,
        required_disk_space_bytes=plan.required_disk_space_bytes,
        created=created,
        elapsed_s=round(time.monotonic() - started, 3),
    )


# -- deciding ---------------------------------------------------------------------------


def make_plan(store: WriteStore, old: Manifest, new: Manifest, executor: cf.Executor, progress: Progress,
              find: sealed.KeyFinder | None = None, seal: ContentKey | None = None) -> Plan:
    """The plan ``old`` -> ``new``; ``find`` opens their sealed chunks, ``seal`` (a
    content key) seals the patches (bound to the plan's name)."""
    used = {c.key_id for m in (old, new) for c in m.unique_chunks().values() if c.key_id}
    keys = sealed.Keys([k for k in (find(i) for i in sorted(used)) if k] + ([seal] if seal else [])) \
        if find else sealed.Keys()
    sealing = (keys, seal.key_id if seal else "", layout.plan_key(new.product, old.version, new.version))
    extra = sealing if keys else ()  # a plain pair's tasks are called as they always were
    old_files = {f.path: f for f in old.files}
    old_by_hash: dict[str, FileEntry] = {}
    holders: dict[str, list[tuple[FileEntry, ChunkRef]]] = {}  # chunk id -> the old files' slices of it
    for f in old.files:
        old_by_hash.setdefault(f.hash_sha256, f)
        for c in f.chunks:
            holders.setdefault(c.id, []).append((f, c))

    new_paths = {e.path for e in new.entries}
    gone = [f for f in old.files if f.path not in new_paths]
    ops: dict[str, FileOp] = {}
    changed = []
    for f in new.files:
        same = old_files.get(f.path)
        if same is not None and same.hash_sha256 == f.hash_sha256 and same.executable == f.executable:
            ops[f.path] = FileOp(f.path, "keep", f.hash_sha256)
        elif f.hash_sha256 in old_by_hash:
            ops[f.path] = FileOp(f.path, "copy", f.hash_sha256, source=old_by_hash[f.hash_sha256].path)
        else:
            cost = _fetch_cost(f, holders)
            source = same or _best_source(f, holders) or _look_alike(f, gone)
            ops[f.path] = FileOp(f.path, "chunks", f.hash_sha256, download_bytes=cost)
            if cost and source is not None and source.size >= MIN_SOURCE and f.size:
                changed.append((source, f, cost))
    calls = [(patch_piece, store.location, source, f, piece, cost, *extra)
             for source, f, cost in changed for piece in pieces(source, f)]
    calls.sort(key=lambda call: -call[4][1])  # the largest first: the workers finish together
    made: dict[str, list[PatchSegment | None]] = {}
    for (_, _, _, new_entry, piece, *_), segment in as_completed(executor, calls):
        made.setdefault(new_entry.path, []).append(cast("PatchSegment | None", segment))
        progress(piece[1])
    for source, f, cost in changed:
        segments = made[f.path]
        if None not in segments and sum(cast(PatchSegment, s).patch_size for s in segments) < cost:
            ops[f.path] = FileOp(f.path, "patch", f.hash_sha256, source=source.path,
                                 source_sha256=source.hash_sha256,
                                 segments=tuple(sorted(cast(list[PatchSegment], segments), key=lambda s: s.offset)))

    fetched_chunks = {c.id: c.stored_size for f in new.files if ops[f.path].op == "chunks"
                      for c in f.chunks if c.id not in holders}
    for f in new.files:  # packed files: a patch saves nothing where its chunks come anyway
        op = ops[f.path]
        if op.op == "patch" and all(c.id in fetched_chunks or c.id in holders for c in f.chunks):
            ops[f.path] = FileOp(f.path, "chunks", f.hash_sha256, download_bytes=_fetch_cost(f, holders))
    files = tuple(ops[f.path] for f in new.files)
    return Plan(
        product=new.product,
        from_version=old.version,
        to_version=new.version,
        files=files,
        remove=tuple(e.path for e in old.entries if e.path not in new_paths),
        delta_download_bytes=sum(op.patch_bytes for op in files) + sum(fetched_chunks.values()),
        chunk_download_bytes=sum(c.stored_size for i, c in new.unique_chunks().items() if i not in holders),
        full_download_bytes=new.totals()["stored_bytes"],
        required_disk_space_bytes=sum(f.size for f in new.files if ops[f.path].op != "keep"),
    )


def _fetch_cost(f: FileEntry, holders: dict) -> int:
    """The stored bytes of the chunks ``f`` needs that the old version lacks, each once
    (a packed file's chunks are whole chunks shared with its neighbours)."""
    return sum({c.id: c.stored_size for c in f.chunks if c.id not in holders}.values())


def _best_source(f: FileEntry, holders: dict[str, list[tuple[FileEntry, ChunkRef]]]) -> FileEntry | None:
    """The old file sharing the most bytes with ``f``: the bytes of each chunk that both
    hold (a slice of a packed chunk shares only what the two slices overlap), if any."""
    shared: dict[str, int] = {}
    by_path: dict[str, FileEntry] = {}
    for c in f.chunks:
        for h, hc in holders.get(c.id, ()):
            overlap = min(c.chunk_offset + c.size, hc.chunk_offset + hc.size) - max(c.chunk_offset, hc.chunk_offset)
            if overlap > 0:
                shared[h.path] = shared.get(h.path, 0) + overlap
                by_path[h.path] = h
    if not shared:
        return None
    return by_path[max(sorted(shared), key=lambda p: shared[p])]


def _look_alike(f: FileEntry, gone: list[FileEntry]) -> FileEntry | None:
    """For a small file that shares no chunk with anything (one edit changes its only
    chunk): a removed old file of the same type and about the same size, the likely
    original of a renamed-and-edited file. Diffing it costs little; the patch is kept
    only if it beats fetching."""
    ext = f.path.rsplit(".", 1)[-1] if "." in f.path.rsplit("/", 1)[-1] else ""
    alike = [g for g in gone if g.path.endswith("." + ext) == bool(ext) and abs(g.size - f.size) <= f.size // 4]
    return min(alike, key=lambda g: (abs(g.size - f.size), g.path), default=None)


# -- making patches: a task per piece -------------------------------------------------


Piece = tuple[int, int, int, int]  # offset, size, source offset, source size


def best_patch(old: bytes, new: bytes, zstd_only: bool = False) -> tuple[str, bytes]:
    """The smallest patch among the engines worth trying, checked by applying it.

    zstd-prefix at a low level is the cheap first try; when it is already near the floor
    nothing slower can pay for itself. Otherwise HDiffPatch competes with it. Segments of
    very large files get zstd alone, at a middle level.
    """
    if zstd_only:
        return "zstd-prefix", engines.MAKE["zstd-prefix"](old, new, SEGMENT_ZSTD_LEVEL)
    tried = [("zstd-prefix", engines.MAKE["zstd-prefix"](old, new))]
    if len(tried[0][1]) > max(4096, len(new) * NEAR_FLOOR):
        tried.append(("hdiffpatch", engines.MAKE["hdiffpatch"](old, new)))
    for engine, patch in sorted(tried, key=lambda t: (len(t[1]), t[0])):
        try:
            if engines.apply(engine, old, patch, len(new)) == new:
                return engine, patch
        except PatchFailed:
            continue
    raise PatchFailed("no engine produced a patch that re-applies")


def patch_piece(repo: Location, old: FileEntry, new: FileEntry, piece: Piece, fetch_cost: int,
                keys: sealed.Keys | None = None, seal_with: str = "", plan_name: str = "") -> PatchSegment | None:
    """The patch of one piece of a changed file, stored; None if it alone costs as much as
    fetching the file's new chunks (the file is then fetched, and the patch not kept).
    ``keys`` open sealed chunks; with ``seal_with`` (a key id among them) the patch is
    sealed under ``plan_name``, and named by the BLAKE3 of its sealed bytes."""
    store = open_store(repo)
    offset, size, src_offset, src_size = piece
    get = sealed.chunk_reader(keys.find) if keys else None
    engine, patch = best_patch(read_file_range(store, old.chunks, src_offset, src_offset + src_size, get),
                               read_file_range(store, new.chunks, offset, offset + size, get),
                               zstd_only=max(old.size, new.size) > ZSTD_ONLY_ABOVE)
    key = keys.find(seal_with) if keys and seal_with else None
    if key is not None:
        patch = sealed.seal(key, plan_name, patch)
    if len(patch) >= fetch_cost:
        return None
    pid = codec.chunk_id(patch)
    try:  # found: made new for gc, which must not take it before the plan names it
        store.touch(layout.patch_key(pid), REFRESH_AGE)
    except NotFound:
        store.put_if_absent(layout.patch_key(pid), patch)
    return PatchSegment(offset, size, src_offset, src_size, engine, pid, len(patch))


def pieces(old: FileEntry, new: FileEntry) -> list[Piece]:
    """The pieces ``new`` is patched in, each with the window of ``old`` it is diffed
    against: the bytes it came from (by the chunks they share, else in proportion), wider
    by a margin on each side. The same for the same files, whatever does the work."""
    if max(old.size, new.size) <= PIECE:
        return [(0, new.size, 0, old.size)]
    piece, margin = (SEGMENT, SEGMENT_MARGIN) if max(old.size, new.size) > ZSTD_ONLY_ABOVE else (PIECE, PIECE_MARGIN)
    starts = {c.id: c.offset - c.chunk_offset for c in old.chunks}  # where each old chunk begins, in the old file
    count = -(-new.size // piece)
    out = []
    for i in range(count):
        offset, end = new.size * i // count, new.size * (i + 1) // count
        shifts = sorted(starts[c.id] - (c.offset - c.chunk_offset) for c in new.chunks
                        if c.id in starts and c.offset < end and c.offset + c.size > offset)
        center = (offset + end) // 2 + shifts[len(shifts) // 2] if shifts else (offset + end) * old.size // (2 * new.size)
        window = min(old.size, end - offset + 2 * margin)
        lo = max(0, min(center - window // 2, old.size - window))
        out.append((offset, end - offset, lo, window))
    return out
