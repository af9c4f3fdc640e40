"""What the origins publish, as the lookup service answers from it: products, versions,
channels, plan indexes and manifests, cached in memory and rebuilt only when an origin's
``timestamp.json`` changes (a signed origin), or every refresh (an unsigned one).

Origins are mirrors: documents are read from the healthiest by priority, the next on a
failure. On a signed origin a document is read as the signed metadata names it (its copy
under its hash), so the service answers exactly what players' clients will check.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .. import layout
from ..core.versions import sort_versions
from ..errors import DepotError, NotFound, StoreUnavailable
from ..formats.channel import Channel
from ..formats.manifest import Manifest
from ..formats.plan import Plan
from ..formats.plan_index import PlanIndex
from ..storage import Location, ReadStore


@dataclass
class Origin:
    name: str
    store: ReadStore
    location: Location
    healthy: bool = True
    latency_ms: float | None = None
    error: str = ""
    probed_at: float = 0.0

    @property
    def region(self) -> str:
        return self.location.region or ""

    @property
    def priority(self) -> int:
        return self.location.priority

    @property
    def public_url(self) -> str:
        """Where players fetch from: the CDN in front of the origin, or the origin itself."""
        return self.location.public_url or self.location.url

    def to_dict(self) -> dict:
        return {"name": self.name, "region": self.region, "priority": self.priority, "url": self.public_url,
                "healthy": self.healthy, "latencyMs": self.latency_ms, "error": self.error or None}


@dataclass
class _View:
    """One consistent reading of the published state."""

    stamp: bytes
    targets: dict[str, str] = field(default_factory=dict)  # signed: document key -> sha256
    versions: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, dict[str, Channel]] = field(default_factory=dict)
    indexes: dict[str, PlanIndex | None] = field(default_factory=dict)
    answers: dict[tuple, object] = field(default_factory=dict)  # what the service computed from it


DEFAULT_CACHE_BYTES = 1 << 30
READERS = 16  # requests in flight while a refresh reads roles and looks for manifests


def _in_parallel(fn, items: list) -> list:
    """``[fn(i) for i in items]``, up to READERS at a time: a catalogue's first refresh
    reads a role per product and looks for every manifest."""
    if len(items) < 2:
        return [fn(i) for i in items]
    with cf.ThreadPoolExecutor(min(READERS, len(items))) as pool:
        return list(pool.map(fn, items))


class Catalog:
    def __init__(self, origins: list[Origin], cache_bytes: int = DEFAULT_CACHE_BYTES):
        if not origins:
            raise NotFound("no origin to serve")
        self.origins = origins
        self._lock = threading.Lock()
        # Parsed documents, least recently used first: (key, sha or stamp) -> (parsed, bytes
        # as published). Bounded by the published size, which the parsed form is a few
        # times: manifests of many versions would otherwise take all of the memory.
        self._documents: OrderedDict[tuple[str, str], tuple[object, int]] = OrderedDict()
        self.cache_bytes = cache_bytes
        self.cached_bytes = 0
        # What a refresh need not read again: a product role's targets by its version (a
        # version of a role is written once), and the hashed documents some origin holds
        # (named by their content, never rewritten).
        self._roles: dict[str, tuple[int, dict[str, str]]] = {}
        self._held: set[str] = set()
        self._snapshot_version = 0
        self._view: _View | None = None
        self.refreshes = 0

    # -- reading from the mirrors --------------------------------------------------------

    def ordered(self) -> list[Origin]:
        return sorted(self.origins, key=lambda o: (not o.healthy, o.priority))

    def _get(self, key: str) -> bytes:
        """From the first origin that has it: a mirror behind the others (a publish under
        way) lacks what they have. NOT_FOUND if no origin that answered has it."""
        last: Exception | None = None
        missing: NotFound | None = None
        for origin in self.ordered():
            try:
                return origin.store.get(key)
            except NotFound as exc:
                missing = exc
            except DepotError as exc:
                last = exc
        if missing is not None:
            raise missing
        raise StoreUnavailable(f"{key}: no origin answered ({last})")

    def _document(self, key: str, parse, view: _View | None = None):
        """A document as published: by its hash on a signed origin. Parsed once."""
        view = view or self.view()
        sha = view.targets.get(key)
        cache_key = (key, sha or view.stamp.hex())
        with self._lock:
            cached = self._documents.get(cache_key)
            if cached is not None:
                self._documents.move_to_end(cache_key)
                return cached[0]
        where = layout.hashed_target_key(key, sha) if sha else key
        try:
            data = self._get(where)
        except NotFound:
            self._held.discard(where)  # gone from the origins (a gc): the next refresh looks again
            raise
        if sha and hashlib.sha256(data).hexdigest() != sha:
            raise StoreUnavailable(f"{where}: the origin serves other bytes than the signed document")
        found = parse(data, where)
        with self._lock:
            if cache_key not in self._documents:
                self._documents[cache_key] = (found, len(data))
                self.cached_bytes += len(data)
            while self.cached_bytes > self.cache_bytes and len(self._documents) > 1:
                _, (_, size) = self._documents.popitem(last=False)
                self.cached_bytes -= size
        return found

    # -- the published state -------------------------------------------------------------

    def view(self) -> _View:
        if self._view is None:
            self.refresh()
        return self._view

    def refresh(self) -> bool:
        """Read the origins' state again if their timestamp changed; True if it did."""
        stamp = self._stamp()
        if self._view is not None and stamp and stamp == self._view.stamp:
            return False
        view = _View(stamp)
        if stamp:
            self._read_signed(view)
        else:
            self._read_listing(view)
        for product in view.versions:
            view.versions[product] = sort_versions(view.versions[product])
            index_key = layout.plan_index_key(product)
            try:
                view.indexes[product] = self._document(index_key, PlanIndex.from_bytes, view)
            except NotFound:
                view.indexes[product] = None
        self._view = view  # whole, then in use: a request sees the old state or the new
        self.refreshes += 1
        return True

    def _stamp(self) -> bytes:
        try:
            return self._get(layout.metadata_key("timestamp"))
        except NotFound:
            return b""  # an unsigned origin

    def _read_signed(self, view: _View) -> None:
        from tuf.api.metadata import Metadata

        ts = Metadata.from_bytes(view.stamp)
        snap = Metadata.from_bytes(self._get(layout.metadata_key("snapshot", ts.signed.snapshot_meta.version)))
        if snap.signed.version < self._snapshot_version:  # a repository initialised again: versions restart
            self._roles, self._held = {}, set()
        self._snapshot_version = snap.signed.version
        wanted = {name.removesuffix(".json"): meta.version for name, meta in snap.signed.meta.items()
                  if name.startswith("product-")}

        def read_role(role: str) -> tuple[int, dict[str, str]]:
            md = Metadata.from_bytes(self._get(layout.metadata_key(role, wanted[role])))
            return wanted[role], {path: info.hashes["sha256"] for path, info in md.signed.targets.items()}

        # only the roles signed since are read
        stale = [role for role, version in wanted.items() if self._roles.get(role, (None,))[0] != version]
        fresh = dict(zip(stale, _in_parallel(read_role, stale)))
        self._roles = {role: fresh.get(role) or self._roles[role] for role in wanted}
        for _, targets in self._roles.values():
            view.targets.update(targets)
        self._held &= {layout.hashed_target_key(k, sha) for k, sha in view.targets.items()}
        self._index_documents(view, list(view.targets))

    def _read_listing(self, view: _View) -> None:
        store = next((o.store for o in self.ordered() if hasattr(o.store, "list")), None)
        if store is None:
            raise StoreUnavailable("an unsigned origin must be listable (a path or s3://) to be served")
        self._index_documents(view, list(store.list(layout.PRODUCT_PREFIX)))

    def _index_documents(self, view: _View, keys: list[str]) -> None:
        """A version is published once an origin holds its manifest: the signed metadata
        names every version of the repository, the origins hold those published to them
        (one of them is enough: documents are read from whichever has them). A listed
        origin's versions are its own."""
        manifests = [(key, found) for key in keys
                     if (found := layout.version_document_of(key)) and found[2] == "manifest.json"]
        hashed = {key: layout.hashed_target_key(key, view.targets[key]) for key, _ in manifests if key in view.targets}
        _in_parallel(self._look_for, [where for where in hashed.values() if where not in self._held])
        for key, found in manifests:
            if key not in hashed or hashed[key] in self._held:
                view.versions.setdefault(found[0], []).append(found[1])
        for key in keys:
            channel = layout.channel_of(key)
            product = layout.product_of(key)
            if channel and product in view.versions:
                view.channels.setdefault(product, {})[channel] = self._document(key, Channel.from_bytes, view)

    def _look_for(self, where: str) -> None:
        """Remember ``where`` as held if an origin that answers has it."""
        for origin in self.ordered():
            try:
                if origin.store.has(where):
                    self._held.add(where)
                    return
            except DepotError:
                continue

    # -- what the API asks ---------------------------------------------------------------

    def products(self) -> list[str]:
        return sorted(self.view().versions)

    def versions(self, product: str) -> list[str]:
        try:
            return self.view().versions[product]
        except KeyError:
            raise NotFound(f"no product {product!r} is published") from None

    def channels(self, product: str) -> dict[str, Channel]:
        self.versions(product)
        return self.view().channels.get(product, {})

    def channel(self, product: str, channel: str) -> Channel:
        try:
            return self.channels(product)[channel]
        except KeyError:
            raise NotFound(f"{product} has no channel {channel!r}") from None

    def manifest(self, product: str, version: str) -> Manifest:
        if version not in self.versions(product):
            raise NotFound(f"{product} has no published version {version!r}")
        return self._document(layout.manifest_key(product, version), Manifest.from_bytes)

    def signed(self, key: str) -> dict | None:
        """How the signed metadata names a document (None on an unsigned origin)."""
        sha = self.view().targets.get(key)
        return {"sha256": sha, "path": layout.hashed_target_key(key, sha)} if sha else None

    def plan_index(self, product: str) -> PlanIndex | None:
        self.versions(product)
        return self.view().indexes.get(product)

    def plan(self, product: str, a: str, b: str) -> Plan:
        return self._document(layout.plan_key(product, a, b), Plan.from_bytes)

    # -- health ------------------------------------------------------------------------------

    def probe(self) -> None:
        """How each origin answers now: the timestamp (or the plan index) in time, or not."""
        for origin in self.origins:
            started = time.monotonic()
            try:
                origin.store.has(layout.metadata_key("timestamp"))
                origin.healthy, origin.error = True, ""
                origin.latency_ms = round((time.monotonic() - started) * 1000, 1)
            except DepotError as exc:
                origin.healthy, origin.error, origin.latency_ms = False, str(exc), None
            origin.probed_at = time.time()

    def preferred(self, region: str | None) -> Origin:
        """The origin for a client in ``region``: a healthy one there, else the healthiest
        by priority."""
        healthy = [o for o in self.origins if o.healthy] or self.origins
        return min(healthy, key=lambda o: (o.region != (region or o.region), o.priority))
