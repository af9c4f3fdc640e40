"""update: bring an installed game directory to another version the cheapest way.

The ways compared, in bytes to download: one update plan, a chain of plans (V1 -> V2 ->
V3, found in the product's plan index), or chunks alone (the target's chunks that the
installed version does not have). A plan step stages every file it changes: copies and
patches from the installed files (each source checked against its SHA-256 first, each
result after), chunks for the rest; then swaps them in like install does, so a failure at
any point leaves the previous version as it was. A patch that is missing, damaged or does
not apply is reported as DELTA_PATCH_APPLICATION_FAILED and its file comes from chunks
instead: the update still succeeds. Killed, it resumes: staged files are kept.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from . import codec, engines, layout
from .diff import INDEX_SCHEMA, SCHEMA as PLAN_SCHEMA
from .errors import DepotError, InsufficientDiskSpace, IntegrityError, ManifestInvalid, NotFound
from .fetch import Fetcher
from .install import ChunkJob, Progress, candidates, install, load_manifest, remove_empty_dirs, resolve_version
from .installation import Installation, file_mode
from .manifest import FileEntry, Manifest

READ_BLOCK = 8 << 20


@dataclass(frozen=True)
class UpdateResult:
    product: str
    from_version: str
    to_version: str
    method: str  # "delta", "chunks" or "none"
    route: list[str]
    bytes_downloaded: int
    chunk_route_bytes: int
    delta_route_bytes: int | None
    files_written: int
    patches_applied: int
    fallbacks: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def update(
    fetcher: Fetcher,
    dest: Path,
    to_version: str | None = None,
    channel: str | None = None,
    seeds: Iterable[Path] = (),
    jobs: int = 8,
    progress: Progress | None = None,
    on_total: Progress | None = None,
) -> UpdateResult:
    started = time.monotonic()
    inst = Installation(Path(dest))
    with inst.locked():
        current = inst.manifest()
    product = current.product
    target = to_version or resolve_version(fetcher, product, channel)
    if target == current.version:
        return UpdateResult(product, current.version, target, "none", [target], 0, 0, 0, 0, 0,
                            elapsed_s=round(time.monotonic() - started, 3))
    target_m = load_manifest(fetcher, product, target)
    have = set(current.unique_chunks())
    chunk_cost = sum(c.stored_size for i, c in target_m.unique_chunks().items() if i not in have)
    route, delta_cost = _cheapest_chain(fetcher, product, current.version, target)

    def by_chunks(fallbacks: list[dict], downloaded: int = 0) -> UpdateResult:
        r = install(fetcher, product, target, inst.dest, seeds=seeds, jobs=jobs, progress=progress, on_total=on_total)
        return UpdateResult(product, current.version, target, "chunks", [inst.manifest().version, target],
                            downloaded + r.bytes_downloaded, chunk_cost, delta_cost, r.files_written, 0, fallbacks,
                            round(time.monotonic() - started, 3))

    if route is None or delta_cost >= chunk_cost:
        return by_chunks([])

    downloaded = written = patched = 0
    fallbacks: list[dict] = []
    for a, b in zip(route, route[1:]):
        try:
            plan = fetcher.document(layout.plan_key(product, a, b), PLAN_SCHEMA)
        except (NotFound, ManifestInvalid) as exc:  # listed in the index, but gone or damaged
            key = layout.plan_key(product, a, b)
            fallbacks.append({"path": key, "error": engines.PatchFailed.code, "message": str(exc)})
            return by_chunks(fallbacks, downloaded)
        b_m = target_m if b == target else load_manifest(fetcher, product, b)
        with inst.locked():
            step = _Step(inst, fetcher, plan, inst.manifest(), b_m, progress or (lambda n: None))
            if on_total:
                on_total(plan["required_disk_space_bytes"])
            step.run(seeds, jobs)
        downloaded += step.downloaded
        written += step.written
        patched += step.patched
        fallbacks += step.fallbacks
    return UpdateResult(product, current.version, target, "delta", route, downloaded, chunk_cost, delta_cost,
                        written, patched, fallbacks, round(time.monotonic() - started, 3))


def _cheapest_chain(fetcher: Fetcher, product: str, start: str, goal: str) -> tuple[list[str] | None, int | None]:
    """The route of plans from ``start`` to ``goal`` with the fewest bytes to download."""
    try:
        index = fetcher.document(layout.plan_index_key(product), INDEX_SCHEMA)
    except NotFound:
        return None, None
    edges: dict[str, list[tuple[str, int]]] = {}
    for p in index["plans"]:
        edges.setdefault(p["from_version"], []).append((p["to_version"], p["delta_download_bytes"]))
    best = {start: 0}
    queue = [(0, [start])]
    while queue:
        cost, path = heapq.heappop(queue)
        here = path[-1]
        if here == goal:
            return path, cost
        if cost > best.get(here, cost):
            continue
        for nxt, c in edges.get(here, ()):
            if nxt not in path and cost + c < best.get(nxt, cost + c + 1):
                best[nxt] = cost + c
                heapq.heappush(queue, (cost + c, path + [nxt]))
    return None, None


class _Step:
    """One plan applied: from the installed version ``a`` to ``b``."""

    def __init__(self, inst: Installation, fetcher: Fetcher, plan: dict, a: Manifest, b: Manifest, progress: Progress):
        if a.version != plan["from_version"]:
            raise NotFound(f"plan {plan['from_version']} -> {plan['to_version']} does not start at {a.version}")
        self.inst, self.fetcher, self.plan, self.a, self.b, self.progress = inst, fetcher, plan, a, b, progress
        self.downloaded = self.written = self.patched = 0
        self.fallbacks: list[dict] = []

    def run(self, seeds, jobs: int) -> None:
        free = shutil.disk_usage(self.inst.dest).free
        if self.plan["required_disk_space_bytes"] > free:
            raise InsufficientDiskSpace(f"{self.inst.dest}: the update needs {self.plan['required_disk_space_bytes']} "
                                        f"bytes of staging space, {free} are free")
        intact = self.inst.trusted(self.a)
        staged, by_chunks = [], []
        for op in self.plan["files"]:
            entry = self.b.entry(op["path"])
            if op["op"] == "keep" and entry.path in intact:
                continue
            if op["op"] in ("copy", "patch") and op["source"] in intact:
                try:
                    self._stage(entry, op)
                    staged.append(entry)
                    continue
                except DepotError as exc:
                    if op["op"] == "patch":
                        self.fallbacks.append({"path": entry.path, "error": engines.PatchFailed.code, "message": str(exc)})
            by_chunks.append(entry)
        job = ChunkJob(self.inst, self.b, by_chunks, self.fetcher, self.progress)
        job.find_local(candidates(self.inst, self.b, by_chunks, seeds))
        job.check_space()
        job.run(jobs)
        self.downloaded += job.downloaded
        self.written = len(staged) + len(by_chunks)
        remove = [p for p in self.plan["remove"] if self.a.entry(p).type != "dir"]
        self.inst.swap_in(self.b, staged + by_chunks, remove, [o.url for o in self.fetcher.origins])
        remove_empty_dirs(self.inst, self.a, self.b)

    def _stage(self, entry: FileEntry, op: dict) -> None:
        staged = self.inst.staging_path(entry)
        if _sha256(staged) == entry.hash_sha256:
            return  # staged by an interrupted run
        source = self.inst.dest / op["source"]
        if op["op"] == "copy":
            shutil.copyfile(source, staged)
        else:
            if _sha256(source) != op["source_sha256"]:
                raise engines.PatchFailed(f"{op['source']}: not the file the patch was made from")
            self._patch(source, staged, entry, op["segments"])
        if _sha256(staged) != entry.hash_sha256:
            os.unlink(staged)
            raise engines.PatchFailed(f"{entry.path}: patched bytes do not match hash_sha256")
        os.chmod(staged, file_mode(entry))
        self.progress(entry.size)

    def _patch(self, source: Path, staged: Path, entry: FileEntry, segments: list[dict]) -> None:
        with open(source, "rb") as src, open(staged, "wb") as out:
            out.truncate(entry.size)
            for s in segments:
                patch = self.fetcher.get(layout.patch_key(s["id"]), _checked(s["id"]), s["patch_size"])
                self.downloaded += len(patch)
                src.seek(s["source_offset"])
                old = src.read(s["source_size"])
                out.seek(s["offset"])
                out.write(engines.apply(s["engine"], old, patch, s["size"]))
        self.patched += 1


def _checked(patch_id: str):
    def check(data: bytes) -> bytes:
        if codec.chunk_id(data) != patch_id:
            raise IntegrityError(f"patch {patch_id}: bytes do not match its id")
        return data

    return check


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(READ_BLOCK):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()
