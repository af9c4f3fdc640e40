"""gc: reclaim what no retained version needs, in the repository or on an origin.

Mark: the versions retained are, per product, what each channel delivers and delivered in
its latest moves, the last N chunked versions, and pinned versions; their manifests,
chunks, the plans between two retained versions and their patches, the product's current
documents, the current signed metadata (every root, the timestamp, the snapshot it names
and the roles that snapshot names), and in the repository the inventories and staged
packs of versions still being built, the stats and the publish records. Sweep: every other object, temporaries of killed
writes included, but only once it is older than the grace period: whatever a publish or a
build running right now has written is younger than that, so gc never breaks it.
A dry run (the default) reports what would go, per product.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from .. import layout
from ..core.versions import sort_versions
from ..errors import ManifestInvalid, NotFound
from ..formats import manifest as manifest_doc
from ..formats.channel import Channel
from ..formats.plan import Plan
from ..storage import ObjectInfo, PrunableStore
from ..trust import is_signed
from .metadata import TIMESTAMP, committed_metadata

HOUR = 3600.0
UNREFERENCED = "(unreferenced)"  # data no version names, temporaries
METADATA = "(metadata)"  # superseded signed metadata


@dataclass(frozen=True)
class Retention:
    keep_last: int = 3  # chunked versions per product, newest first
    keep_history: int = 3  # latest moves of each channel whose versions stay
    pinned: tuple[tuple[str, str], ...] = ()  # (product, version)
    grace_s: float = 24 * HOUR  # nothing younger is deleted


@dataclass
class GcReport:
    store: str
    dry_run: bool
    retained: dict[str, list[str]] = field(default_factory=dict)
    freed_objects: int = 0
    freed_bytes: int = 0
    by_product: dict[str, dict] = field(default_factory=dict)
    kept_objects: int = 0
    kept_bytes: int = 0
    too_young: int = 0  # unreferenced, but within the grace period
    listed: int = 0
    list_s: float = 0.0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def gc(store: PrunableStore, retention: Retention = Retention(), delete: bool = False,
       now: float | None = None) -> GcReport:
    started = time.monotonic()
    report = GcReport(store.url, dry_run=not delete)
    objects = list(store.scan())
    report.listed, report.list_s = len(objects), round(time.monotonic() - started, 3)
    keys = {o.key for o in objects}
    marked, owners = _mark(store, keys, retention, report)
    now = time.time() if now is None else now
    doomed: list[ObjectInfo] = []
    for o in objects:
        if o.key in marked:
            report.kept_objects += 1
            report.kept_bytes += o.size
        elif now - o.modified < retention.grace_s:
            report.too_young += 1
        else:
            doomed.append(o)
            product = layout.product_of(o.key) or owners.get(o.key) or (
                METADATA if o.key.startswith(layout.METADATA_PREFIX) else UNREFERENCED)
            row = report.by_product.setdefault(product, {"objects": 0, "bytes": 0})
            row["objects"] += 1
            row["bytes"] += o.size
            report.freed_objects += 1
            report.freed_bytes += o.size
    if delete:
        # Documents first, data last: an interrupted gc never leaves a manifest without its chunks.
        for o in sorted(doomed, key=lambda o: o.key.startswith((layout.CHUNK_PREFIX, layout.PATCH_PREFIX))):
            store.delete(o.key)
    report.elapsed_s = round(time.monotonic() - started, 3)
    return report


def _mark(store: PrunableStore, keys: set[str], retention: Retention, report: GcReport) -> tuple[set[str], dict]:
    """The keys to keep, and for data no retained version needs, the product that had it."""
    marked: set[str] = set()
    owners: dict[str, str] = {}
    documents: dict[str, dict[str, set[str]]] = {}  # product -> version -> document names
    for key in keys:
        found = layout.version_document_of(key)
        if found:
            documents.setdefault(found[0], {}).setdefault(found[1], set()).add(found[2])
    products = {p for p in map(layout.product_of, keys) if p}
    for product in sorted(products):
        versions = documents.get(product, {})
        chunked = sort_versions(v for v, names in versions.items() if "manifest.json" in names)
        keep = set(chunked[-retention.keep_last:] if retention.keep_last else [])
        keep |= {v for p, v in retention.pinned if p == product}
        for key in sorted(k for k in keys if layout.channel_of(k) and layout.product_of(k) == product):
            pointer = _document(store, key, Channel)
            if pointer is not None:
                keep.add(pointer.version)
                keep |= {m.version for m in pointer.history[: retention.keep_history]}
                marked |= _with_current_copy(store, key, keys)
        unfinished = {v for v, names in versions.items() if "manifest.json" not in names}
        for v in unfinished:  # a build in progress: its inventory and staged pack stay
            marked.add(layout.inventory_key(product, v))
            marked.add(layout.staged_pack_key(product, v))
        report.retained[product] = sort_versions(keep & set(chunked))
        for v in chunked:
            m = _document(store, layout.manifest_key(product, v), manifest_doc.Manifest)
            if m is None:
                continue
            ids = {layout.chunk_key(c) for c in m.unique_chunks()}
            if v in keep:
                marked |= {k for k in keys if layout.version_document_of(k) and k.startswith(
                    layout.manifest_key(product, v).rsplit("/", 1)[0] + "/")}
                marked |= ids
            else:
                for k in ids:
                    owners.setdefault(k, product)
        for key in keys:
            pair = layout.plan_pair_of(layout.plain_key_of(key))
            if pair and layout.product_of(key) == product:
                plan = _document(store, layout.plan_key(product, *pair), Plan)
                patches = {layout.patch_key(s.id) for op in (plan.files if plan else ()) for s in op.segments}
                if pair[0] in keep and pair[1] in keep:
                    marked.add(key)
                    marked |= patches
                else:
                    for k in patches:
                        owners.setdefault(k, product)
        for key in (layout.plan_index_key(product), layout.product_config_key(product)):
            if key in keys:
                marked |= _with_current_copy(store, key, keys)
    marked |= _metadata(store, keys)
    marked.add(layout.TRUST_SETTINGS_KEY)
    marked |= {k for k in keys if k.startswith((layout.STATS_PREFIX, layout.PUBLISH_LOG_PREFIX))}  # analysts' history
    return marked, owners


def _document(store: PrunableStore, key: str, kind):
    try:
        return kind.from_bytes(store.get(key), store.url_of(key))
    except (NotFound, ManifestInvalid):
        return None


def _with_current_copy(store: PrunableStore, key: str, keys: set[str]) -> set[str]:
    """A document and the copy of its current bytes under their hash (older copies go)."""
    try:
        sha = hashlib.sha256(store.get(key)).hexdigest()
    except NotFound:
        return set()
    return {key} | ({layout.hashed_target_key(key, sha)} & keys)


def _metadata(store: PrunableStore, keys: set[str]) -> set[str]:
    """What the timestamp commits to, and the timestamp."""
    if not is_signed(store):
        return set()
    roots = [k for k in keys if k.startswith(layout.METADATA_PREFIX) and k.endswith(".root.json")]
    return set(committed_metadata(store, roots)[0]) | {layout.metadata_key(TIMESTAMP)}
