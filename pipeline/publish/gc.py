"""gc: reclaim what no retained version needs, in the repository or on an origin.

Refuse first: a location without depot's marker (``depot.json``), a grace period that is
not a finite number of seconds; and, for a collection of several stores, a pin naming a
version none of them has (``check_pins``).

Mark from what players read. In a signed store that is the signed metadata: every root,
the snapshot the timestamp commits to, each snapshot superseded within the grace period
(a player or a CDN may still hold its timestamp), the roles those snapshots name, and the
documents those roles name under their hashes, and every released content key (a later
version may name objects sealed with it). Versions retained, per product: what each
channel delivers and delivered in its latest moves (as the pointers in the store and the
signed pointers say), the last N chunked versions, and pinned versions. Kept: their
documents (plain and hashed copies), their chunks, the plans between two of them and
their patches; the product's pointers, plan index and settings; the inventories and
staged packs of versions still being built; the stats and the publish records.

An embargoed version's manifest and plans are sealed: they are opened with the key the
store publishes, else with the release side's (``keys``). A retained version whose
documents no key opens (an origin before release, gc run without ``--keys``) could name
any chunk or patch: then no chunk or patch of the store is deleted (``locked`` says which
versions), and documents only as usual.

Sweep only what depot's layout names (a file someone put in the store stays), and only
once it is older than the grace period, checked again at the moment of deletion
(``PrunableStore.prune``): a build or publish that reuses an object makes it new
(``WriteStore.touch``), so gc never takes what a running writer is about to name.
Documents go first and data last, so an interrupted gc never leaves a manifest without
its chunks. A dry run (the default) reports what would go, per product.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from .. import layout
from ..core.versions import sort_versions
from ..errors import ContentAuthenticationFailed, ContentLocked, InvalidArgument, ManifestInvalid, NotFound
from ..formats import manifest as manifest_doc
from ..formats import sealed
from ..formats.release import key_finder
from ..formats.channel import Channel
from ..formats.plan import Plan
from ..storage import ObjectInfo, PrunableStore, marker
from .metadata import SNAPSHOT, TIMESTAMP, committed_metadata, is_product_role, product_targets

HOUR = 3600.0
UNREFERENCED = "(unreferenced)"  # data no version names, temporaries
METADATA = "(metadata)"  # superseded signed metadata
LOCKED = object()  # a sealed document no key at hand opens


@dataclass(frozen=True)
class Retention:
    keep_last: int = 3  # chunked versions per product, newest first
    keep_history: int = 3  # latest moves of each channel whose versions stay
    pinned: tuple[tuple[str, str], ...] = ()  # (product, version)
    grace_s: float = 24 * HOUR  # nothing younger is deleted

    def check(self) -> None:
        if not (math.isfinite(self.grace_s) and self.grace_s >= 0):
            raise InvalidArgument(f"grace period {self.grace_s / HOUR!r} hours: expected a finite number >= 0")


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
    too_young: int = 0  # unreferenced, but within the grace period (or reused since listed)
    locked: list[str] = field(default_factory=list)  # retained versions whose sealed documents no key opens
    foreign: int = 0  # not depot's: never deleted
    listed: int = 0
    list_s: float = 0.0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def freed(self, o: ObjectInfo, product: str) -> None:
        row = self.by_product.setdefault(product, {"objects": 0, "bytes": 0})
        row["objects"] += 1
        row["bytes"] += o.size
        self.freed_objects += 1
        self.freed_bytes += o.size


def gc(store: PrunableStore, retention: Retention = Retention(), delete: bool = False,
       now: float | None = None, keys: sealed.KeyFinder | None = None) -> GcReport:
    retention.check()
    marker.require(store)
    started = time.monotonic()
    report = GcReport(store.url, dry_run=not delete)
    objects = {o.key: o for o in store.scan()}
    report.listed, report.list_s = len(objects), round(time.monotonic() - started, 3)
    now = time.time() if now is None else now
    cutoff = now - retention.grace_s
    marked, owners = _mark(store, objects, retention, cutoff, report, keys)
    data = (layout.CHUNK_PREFIX, layout.PATCH_PREFIX)
    doomed: list[ObjectInfo] = []
    for o in objects.values():
        if o.key in marked or report.locked and o.key.startswith(data):
            report.kept_objects += 1
            report.kept_bytes += o.size
        elif not layout.is_depot_key(o.key):
            report.foreign += 1
        elif o.modified >= cutoff:
            report.too_young += 1
        else:
            doomed.append(o)
    # Documents first, data last: an interrupted gc never leaves a manifest without its chunks.
    doomed.sort(key=lambda o: (o.key.startswith((layout.CHUNK_PREFIX, layout.PATCH_PREFIX)), o.key))
    for o in doomed:
        if delete and not store.prune(o.key, cutoff):
            report.too_young += 1  # written again since it was listed: a writer reuses it
            continue
        report.freed(o, layout.product_of(o.key) or owners.get(o.key) or (
            METADATA if o.key.startswith(layout.METADATA_PREFIX) else UNREFERENCED))
    report.elapsed_s = round(time.monotonic() - started, 3)
    return report


def check_pins(stores: list[PrunableStore], pinned: tuple[tuple[str, str], ...]) -> None:
    """Refuse a pin that names a version none of ``stores`` has chunked (a typo would
    otherwise protect nothing, silently). A store without it has nothing more to keep."""
    for product, version in pinned:
        if not any(store.has(layout.manifest_key(product, version)) for store in stores):
            raise NotFound(f"--pin {product}={version}: no chunked version {version} of {product} in "
                           + ", ".join(store.url for store in stores))


def _mark(store: PrunableStore, objects: dict[str, ObjectInfo], retention: Retention, cutoff: float,
          report: GcReport, content_keys: sealed.KeyFinder | None = None) -> tuple[set[str], dict[str, str]]:
    """The keys to keep, and for data no retained version needs, the product that had it."""
    keys = set(objects)
    metadata, signed = _live_metadata(store, objects, cutoff)
    marked: set[str] = set(metadata) | {layout.TRUST_SETTINGS_KEY, layout.STORE_MARKER_KEY}
    marked |= {k for k in keys if k.startswith((layout.STATS_PREFIX, layout.PUBLISH_LOG_PREFIX))}  # analysts' history
    owners: dict[str, str] = {}
    documents: dict[str, dict[str, set[str]]] = {}  # product -> version -> document names
    for key in keys:
        found = layout.version_document_of(key)
        if found:
            documents.setdefault(found[0], {}).setdefault(found[1], set()).add(found[2])
    products = {p for k in keys if (p := layout.product_of(k)) is not None and layout.is_depot_key(k)}
    for product in sorted(products):
        find = key_finder(store, product, content_keys)
        marked |= {k for k in keys if layout.content_key_of(k) and layout.product_of(k) == product}
        versions = documents.get(product, {})
        chunked = sort_versions(v for v, names in versions.items() if "manifest.json" in names)
        targets = signed.get(product, {})  # signed path -> the hashed copies players read
        keep = set(chunked[-retention.keep_last:] if retention.keep_last else [])
        keep |= {v for p, v in retention.pinned if p == product}
        pointers = [k for k in keys if layout.channel_of(k) and layout.product_of(k) == product]
        pointers += [h for path, copies in targets.items() if layout.channel_of(path) for h in copies]
        for key in sorted(pointers):
            pointer = _document(store, key, Channel)
            if pointer is not None:
                keep.add(pointer.version)
                keep |= {m.version for m in pointer.history[: retention.keep_history]}
                marked.add(key)
        for v, names in versions.items():
            if "manifest.json" not in names:  # a build in progress: its inventory and staged pack stay
                marked |= {layout.inventory_key(product, v), layout.staged_pack_key(product, v)}
        report.retained[product] = sort_versions(keep & set(chunked))
        for v in chunked:
            m = _document(store, layout.manifest_key(product, v), manifest_doc.Manifest, find)
            if m is LOCKED and v in keep:
                report.locked.append(f"{product} {v}")
            ids = {layout.chunk_key(c.id, c.key_id) for c in m.unique_chunks().values()} if m and m is not LOCKED \
                else set()
            if v in keep:
                marked |= {layout.version_prefix(product, v) + name for name in versions[v]}
                marked |= ids
            else:
                for k in ids:
                    owners.setdefault(k, product)
        for key in keys:
            pair = layout.plan_pair_of(key)
            if pair and layout.product_of(key) == product:
                plan = _document(store, key, Plan, find)
                if plan is LOCKED and pair[0] in keep and pair[1] in keep:
                    report.locked.append(f"{product} {pair[0]} -> {pair[1]}")
                patches = {layout.patch_key(s.id) for op in (plan.files if plan and plan is not LOCKED else ())
                           for s in op.segments}
                if pair[0] in keep and pair[1] in keep:
                    marked.add(key)
                    marked |= patches
                else:
                    for k in patches:
                        owners.setdefault(k, product)
        marked |= {layout.plan_index_key(product), layout.product_config_key(product)}
        for path, copies in targets.items():
            if _names_retained(path, keep):
                marked |= copies
    return marked, owners


def _names_retained(path: str, keep: set[str]) -> bool:
    """Whether a signed document is one players of the retained versions need: a pointer,
    the plan index, a retained version's document, a plan between two retained versions."""
    found = layout.version_document_of(path)
    if found:
        return found[1] in keep
    pair = layout.plan_pair_of(path)
    if pair:
        return pair[0] in keep and pair[1] in keep
    return True


def _live_metadata(store: PrunableStore, objects: dict[str, ObjectInfo],
                   cutoff: float) -> tuple[set[str], dict[str, dict[str, set[str]]]]:
    """The signed metadata players may still hold: every root, the timestamp, the snapshot
    it commits to, and each snapshot superseded after ``cutoff``, with the roles they name.
    And what those product roles sign: product -> signed path -> its hashed copies here.
    Nothing for an unsigned store."""
    timestamp = layout.metadata_key(TIMESTAMP)
    if timestamp not in objects:
        return set(), {}
    roles = {key: layout.metadata_role_of(key) for key in objects
             if key.startswith(layout.METADATA_PREFIX) and layout.is_depot_key(key)}
    roots = [key for key, (_, role) in roles.items() if role == "root"]
    snapshots = sorted((version, key) for key, (version, role) in roles.items() if role == SNAPSHOT)
    live = set(committed_metadata(store, roots)[0]) | {timestamp}
    for (_, older), (_, newer) in zip(snapshots, snapshots[1:]):
        if objects[newer].modified >= cutoff and older not in live:  # superseded within the grace period
            live |= set(committed_metadata(store, roots, snapshot=older)[0])
    signed: dict[str, dict[str, set[str]]] = {}
    for key in sorted(live & set(objects)):
        if is_product_role(key):
            for path, sha256 in product_targets(store, key).items():
                product = layout.product_of(path)
                if product:
                    signed.setdefault(product, {}).setdefault(path, set()).add(layout.hashed_target_key(path, sha256))
    return live, signed


def _document(store: PrunableStore, key: str, kind, find: sealed.KeyFinder | None = None):
    """The document at ``key``; None if it is missing or broken; LOCKED if it is sealed and
    no key at hand opens it (its objects are not known)."""
    try:
        data = store.get(key)
        if find is not None:
            data = sealed.open_document(data, key, find)
        return kind.from_bytes(data, store.url_of(key))
    except (ContentLocked, ContentAuthenticationFailed):
        return LOCKED
    except (NotFound, ManifestInvalid):
        return None
