"""What a task asks the client to do, from the signed documents the catalogue verified: a
download's items are the manifest's files (their sizes and SHA-256); an update's are the
operations of the update plans on the route the client will take (``delta.route``, the
decision the update check prices), or, when no route downloads less, the target's files
the installed version lacks, fetched by chunks. The documents the client reads are named
so that the API can hand out signed links to them."""

from __future__ import annotations

from dataclasses import dataclass

from ... import layout
from ...delta.route import update_route
from ...errors import NotFound
from ...formats.manifest import Manifest
from ...formats.plan import Plan
from ..catalog import Catalog
from .queue import NewItem


@dataclass(frozen=True)
class Work:
    items: list[NewItem]
    documents: list[str]  # keys: the manifest, then the plans on the route


def download_work(catalog: Catalog, product: str, version: str) -> Work:
    manifest = catalog.manifest(product, version)
    return Work(_files(manifest.files), [layout.manifest_key(product, version)])


def update_work(catalog: Catalog, product: str, installed: str | None, target: str) -> Work:
    """An update from ``installed`` (None: not known, everything is downloaded)."""
    goal, have, plans = _route(catalog, product, installed, target)
    documents = [layout.manifest_key(product, target)]
    if have is None:
        return Work(_files(goal.files, "chunks"), documents)
    if plans:
        items = [NewItem(f.path, f.patch_bytes if f.op == "patch" else f.download_bytes, f.hash_sha256, f.op)
                 for plan in plans for f in plan.files if f.op != "keep"]
        return Work(items, documents + [layout.plan_key(product, p.from_version, p.to_version) for p in plans])
    before = {(f.path, f.hash_sha256) for f in have.files}
    return Work(_files([f for f in goal.files if (f.path, f.hash_sha256) not in before], "chunks"), documents)


def documents(catalog: Catalog, kind: str, product: str, installed: str | None, version: str) -> list[str]:
    """The keys of the documents a task's client reads (its links), without its items."""
    if version not in catalog.versions(product):
        raise NotFound(f"{product} has no published version {version!r}")
    keys = [layout.manifest_key(product, version)]
    if kind == "update":
        _, _, plans = _route(catalog, product, installed, version)
        keys += [layout.plan_key(product, p.from_version, p.to_version) for p in plans]
    return keys


def _route(catalog: Catalog, product: str, installed: str | None, target: str
           ) -> tuple[Manifest, Manifest | None, list[Plan]]:
    """The target's manifest, the installed one (None: not one the catalogue holds) and the
    plans on the route the client takes (none: it fetches chunks)."""
    goal = catalog.manifest(product, target)
    try:
        have = catalog.manifest(product, installed) if installed else None
    except NotFound:
        have = None
    if have is None or installed is None:
        return goal, None, []
    route = update_route(catalog.plan_index(product), installed, target, goal.chunk_cost_from(have))
    if route is None:
        return goal, have, []
    try:
        return goal, have, [catalog.plan(product, a, b) for a, b in zip(route.versions, route.versions[1:])]
    except NotFound:  # indexed, not on the origins yet: by chunks, as the client will
        return goal, have, []


def _files(files: list, operation: str | None = None) -> list[NewItem]:
    return [NewItem(f.path, f.size, f.hash_sha256 or None, operation) for f in files]


def latest(catalog: Catalog, product: str, channel: str) -> str:
    """The version a task without one downloads: its channel's, else the newest."""
    if catalog.channels(product):
        return catalog.channel(product, channel).version
    return catalog.versions(product)[-1]
