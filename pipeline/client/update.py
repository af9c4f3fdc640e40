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

import os
import shutil
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import layout
from ..core.hashing import sha256_or_none
from ..core.progress import Progress, ignore
from ..core import patching
from ..delta.route import cheapest_route, update_route
from ..errors import DepotError, InsufficientDiskSpace, ManifestInvalid, NotFound, PatchFailed
from ..formats.content_key import ContentKey
from ..formats.plan_index import PlanIndex
from ..formats.plan import FileOp, PatchSegment, Plan
from .fetch import Fetcher
from .assemble import Assembly, mib
from .disk import copy_file
from .game_dir import GameDir
from . import preload
from .install import fetch_manifest, install, known_mtimes, remove_empty_dirs, resolve_version
from .keys import fetch_plan
from .reuse import candidates
from .tree import Tree


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
    progress: Progress = ignore,
    on_total: Progress = ignore,
) -> UpdateResult:
    started = time.monotonic()
    inst = GameDir(Path(dest))
    inst.manifest()  # not a depot installation: say so before the lock leaves state behind
    with inst.locked():
        current = inst.manifest()
    product = current.product
    if to_version:
        target = to_version
    elif channel is not None:
        target = resolve_version(fetcher, product, channel)
    else:
        raise ValueError("update: give the version to update to or a channel")
    if target == current.version:
        return UpdateResult(product, current.version, target, "none", [target], 0, 0, 0, 0, 0,
                            elapsed_s=round(time.monotonic() - started, 3))
    target_m, published = fetch_manifest(fetcher, product, target)
    have = current.unique_chunks()
    missing = {i: c for i, c in target_m.unique_chunks().items() if i not in have}
    chunk_cost = target_m.chunk_cost_from(current) - preload.staged_bytes(inst.dest, missing)  # pre-loaded: free
    index = _plan_index(fetcher, product)
    best = cheapest_route(index, current.version, target)
    delta_cost = best.download_bytes if best else None
    route = update_route(index, current.version, target, chunk_cost)

    def by_chunks(fallbacks: list[dict], downloaded: int = 0) -> UpdateResult:
        r = install(fetcher, product, target, inst.dest, seeds=seeds, jobs=jobs, progress=progress, on_total=on_total)
        return UpdateResult(product, current.version, target, "chunks", [current.version, target],
                            downloaded + r.bytes_downloaded, chunk_cost, delta_cost, r.files_written, 0, fallbacks,
                            round(time.monotonic() - started, 3))

    if route is None:
        return by_chunks([])

    downloaded = written = patched = 0
    fallbacks: list[dict] = []
    for a, b in zip(route.versions, route.versions[1:]):
        key = layout.plan_key(product, a, b)
        try:
            plan, sealed_with = fetch_plan(fetcher, product, a, b)
        except (NotFound, ManifestInvalid) as exc:  # listed in the index, but gone or damaged
            fallbacks.append({"path": key, "error": PatchFailed.code, "message": str(exc)})
            return by_chunks(fallbacks, downloaded)
        b_m, b_published = (target_m, published) if b == target else fetch_manifest(fetcher, product, b)
        with inst.locked():
            b_tree = Tree(b_m, fetcher.url_of(layout.manifest_key(product, b)))
            step = _Step(inst, fetcher, plan, inst.tree(), b_tree, b_published, progress, sealed_with)
            on_total(plan.required_disk_space_bytes)
            step.run(seeds, jobs)
        downloaded += step.downloaded
        written += step.written
        patched += step.patched
        fallbacks += step.fallbacks
    return UpdateResult(product, current.version, target, "delta", list(route.versions), downloaded, chunk_cost,
                        delta_cost, written, patched, fallbacks, round(time.monotonic() - started, 3))


def _plan_index(fetcher: Fetcher, product: str) -> PlanIndex | None:
    """The plan index; None when it is missing or (on an unsigned origin) damaged: updating
    by chunks is always possible. On a signed origin a damaged index is refused."""
    try:
        return fetcher.document(layout.plan_index_key(product), PlanIndex.from_bytes)
    except (NotFound, ManifestInvalid):
        return None


class _Step:
    """One plan applied: from the installed version ``a`` to ``b``."""

    def __init__(self, inst: GameDir, fetcher: Fetcher, plan: Plan, a: Tree, b: Tree, b_published: bytes,
                 progress: Progress, sealed_with: ContentKey | None = None):
        if a.m.version != plan.from_version:
            raise NotFound(f"plan {plan.from_version} -> {plan.to_version} does not start at {a.m.version}")
        self.inst, self.fetcher, self.plan, self.a, self.b, self.progress = inst, fetcher, plan, a, b, progress
        self.b_published = b_published
        self.sealed_with = sealed_with  # the key of a sealed plan: it opens the plan's patches
        self.downloaded = self.written = self.patched = 0
        self.fallbacks: list[dict] = []

    def run(self, seeds, jobs: int) -> None:
        free = shutil.disk_usage(self.inst.dest).free
        if self.plan.required_disk_space_bytes > free:
            raise InsufficientDiskSpace(f"{self.inst.dest}: the update needs {mib(self.plan.required_disk_space_bytes)} "
                                        f"of staging space, {mib(free)} are free")
        a, b = self.a, self.b
        flags = self.inst.intact(a)
        intact = {a.paths[j] for j in range(len(a)) if flags[j]}
        ops = [op for op in self.plan.files if not (op.op == "keep" and op.path in intact)]
        present = self.inst.stage(op.path for op in ops)
        staged, by_chunks = [], array("i")
        for op in ops:
            i = b.find(op.path)
            if i is None:
                raise NotFound(f"plan {self.plan.from_version} -> {self.plan.to_version} names {op.path!r}, "
                               f"which {b.m.version} does not have")
            if op.op in ("copy", "patch") and op.source in intact:
                try:
                    self._stage(i, op, op.path in present)
                    staged.append(op.path)
                    continue
                except DepotError as exc:
                    if op.op == "patch":
                        self.fallbacks.append({"path": op.path, "error": PatchFailed.code, "message": str(exc)})
            by_chunks.append(i)
        job = Assembly(self.inst, b, by_chunks, self.fetcher, self.progress, present)
        job.find_local(lambda: candidates(self.inst, b.paths, (b.paths[i] for i in by_chunks), seeds))
        job.check_space()
        job.run(jobs)
        self.downloaded += job.downloaded
        self.written = len(staged) + len(by_chunks)
        not_dirs = set(a.paths).union(p for p, _ in a.links)
        remove = [p for p in self.plan.remove if p in not_dirs]
        kept = bytearray(len(b))
        for op in self.plan.files:
            if op.op == "keep" and op.path in intact and (i := b.find(op.path)) is not None:
                kept[i] = 1
        mtimes = known_mtimes(b, job, a, kept, self.inst)
        self.inst.swap_in(b, staged + [b.paths[i] for i in by_chunks], remove, [o.url for o in self.fetcher.origins],
                          self.fetcher.trust_id, mtimes, self.b_published)
        remove_empty_dirs(self.inst, a, b)

    def _stage(self, i: int, op: FileOp, present: bool) -> None:
        b = self.b
        staged = os.path.join(self.inst.staging, b.paths[i])
        if present and sha256_or_none(staged) == b.sha256(i):  # staged by an interrupted run,
            os.chmod(staged, b.mode(i))  # which may have died before its mode was set
            return
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        source = self.inst.dest / op.source
        if op.op == "copy":
            copy_file(source, staged)
        else:
            if sha256_or_none(source) != op.source_sha256:
                raise PatchFailed(f"{op.source}: not the file the patch was made from")
            self._patch(source, staged, b.sizes[i], op.segments)
        if sha256_or_none(staged) != b.sha256(i):
            os.unlink(staged)
            raise PatchFailed(f"{b.paths[i]}: patched bytes do not match hash_sha256")
        os.chmod(staged, b.mode(i))
        self.progress(b.sizes[i])

    def _patch(self, source: Path, staged: str, size: int, segments: tuple[PatchSegment, ...]) -> None:
        with open(source, "rb") as src, open(staged, "wb") as out:
            out.truncate(size)
            for s in segments:
                patch = self.fetcher.patch(s.id, s.patch_size, self.sealed_with,
                                           layout.plan_key(self.plan.product, self.plan.from_version,
                                                           self.plan.to_version))
                self.downloaded += s.patch_size  # as stored: a sealed patch is opened once downloaded
                src.seek(s.source_offset)
                old = src.read(s.source_size)
                out.seek(s.offset)
                out.write(patching.apply(s.engine, old, patch, s.size))
        self.patched += 1
