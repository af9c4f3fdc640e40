"""What the origins publish, as the lookup service answers from it: products, versions,
channels, plan indexes and manifests, cached in memory and rebuilt only when an origin's
``timestamp.json`` changes (a signed origin), or every refresh (an unsigned one).

Origins are mirrors: documents are read from the healthiest by priority, the next on a
failure. On a signed origin the metadata is verified from the trusted root first, as
players' clients verify it (``verified``), and a document is read as the verified metadata
names it (its copy under its hash, checked), so the service answers only from what clients
will accept. Each mirror's timestamp is looked at: the newest that verifies is answered
from, and a mirror whose metadata does not verify is passed over for the next. Metadata
that does not verify is never used: the last verified state is answered from until it
expires, then nothing is.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field

from cachetools import LRUCache

from .. import layout
from ..core.versions import sort_versions
from ..errors import ContentLocked, DepotError, MetadataExpired, NotFound, StoreUnavailable, TargetMismatch, TrustMissing
from ..formats import sealed
from ..formats.channel import Channel
from ..formats.content_key import ContentKey
from ..formats.manifest import Manifest
from ..formats.release import Release
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
    expires: float | None = None  # signed: when the metadata it was read from expires
    timestamp_version: int | None = None
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
    def __init__(self, origins: list[Origin], cache_bytes: int = DEFAULT_CACHE_BYTES, trust: bytes | None = None,
                 clock=time.time):
        """``trust``: the repository's root metadata, which signed origins are verified from.
        ``clock``: seconds since the epoch, what a scheduled release's time is compared with."""
        if not origins:
            raise NotFound("no origin to serve")
        self.origins = origins
        self.clock = clock
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._verifier = None
        if trust is not None:
            from .verified import Verifier  # python-tuf: only when trust is used

            self._verifier = Verifier(trust, _in_parallel)
        # What the last refresh refused: (the mirror, or None for the origins as a whole,
        # and why). Mirrors whose metadata claims to be newer than the state answered from.
        self.refused: list[tuple[str | None, DepotError]] = []
        # Parsed documents: (key, sha or stamp) -> (parsed, bytes as published). Bounded by
        # the published size, which the parsed form is a few times: manifests of many
        # versions would otherwise take all of the memory. The least recently used go
        # first. An LRUCache is not thread-safe: every use holds self._lock.
        self._documents: LRUCache[tuple[str, str], tuple[object, int]] = LRUCache(
            cache_bytes, getsizeof=lambda parsed_and_size: parsed_and_size[1])
        # What a refresh need not look for again: the hashed documents some origin holds
        # (named by their content, never rewritten). The verifier keeps the product roles.
        self._held: set[str] = set()
        self._view: _View | None = None

    # -- reading from the mirrors --------------------------------------------------------

    def ordered(self) -> list[Origin]:
        return sorted(self.origins, key=lambda o: (not o.healthy, o.priority))

    def _get(self, key: str, sha256: str = "", first: tuple[Origin, ...] = ()) -> bytes:
        """From the first origin that has it (those in ``first`` before the others): a
        mirror behind the others (a publish under way) lacks what they have. NOT_FOUND if
        no origin that answered has it. With ``sha256``, only those bytes: an origin
        serving others is passed over, and TARGET_MISMATCH if every origin that has it does."""
        last: Exception | None = None
        missing: NotFound | None = None
        wrong: list[str] = []
        for origin in [*first, *(o for o in self.ordered() if all(o is not f for f in first))]:
            try:
                data = origin.store.get(key)
            except NotFound as exc:
                missing = exc
                continue
            except DepotError as exc:
                last = exc
                continue
            if sha256 and hashlib.sha256(data).hexdigest() != sha256:
                wrong.append(origin.name)
                continue
            return data
        if wrong:
            raise TargetMismatch(f"{key}: not the signed document on {', '.join(wrong)}")
        if missing is not None:
            raise missing
        raise StoreUnavailable(f"{key}: no origin answered ({last})")

    def _document(self, key: str, parse, view: _View | None = None):
        """A document as published: by its hash on a signed origin. Parsed once."""
        view = view or self.view()
        sha = view.targets.get(key)
        if view.expires is not None and not sha:  # a signed origin serves nothing unsigned
            raise NotFound(f"{key} is not in the signed metadata")
        cache_key = (key, sha or view.stamp.hex())
        with self._lock:
            cached = self._documents.get(cache_key)  # now the most recently used
        if cached is not None:
            return cached[0]
        where = layout.hashed_target_key(key, sha) if sha else key
        try:
            data = self._get(where, sha or "")
        except NotFound:
            self._held.discard(where)  # gone from the origins (a gc): the next refresh looks again
            raise
        found = parse(data, where)
        if len(data) <= self.cache_bytes:  # one larger than the whole cache is not kept
            with self._lock:
                self._documents.setdefault(cache_key, (found, len(data)))  # the least recently used make room
        return found

    @property
    def cache_bytes(self) -> int:
        """The most published bytes the parsed documents kept may stand for."""
        return int(self._documents.maxsize)

    @property
    def cached_bytes(self) -> int:
        """The published bytes of the parsed documents kept."""
        with self._lock:
            return int(self._documents.currsize)

    # -- the published state -------------------------------------------------------------

    def view(self) -> _View:
        """The state answers come from: refused while there is no verified one, or once
        the metadata it was read from has expired."""
        view = self._view
        if view is None:
            if self.refused:
                raise _again(self.refused[0][1])
            self.refresh()
            view = self._view
            assert view is not None, "a refresh reads a state or raises"
        if view.expires is not None and time.time() >= view.expires:
            raise MetadataExpired(f"the origins' signed metadata expired at {iso_time(view.expires)} and nothing newer "
                                  "verifies (a frozen origin, or one not re-signed)"
                                  + "".join(f"; refused: {exc}" for _, exc in self.refused))
        return view

    @property
    def last_read(self) -> _View | None:
        """The state last read, expired or not (None before the first refresh): what the
        health check and the metrics show."""
        return self._view

    @property
    def verifies(self) -> bool:
        """Whether the service verifies what it serves (it was given a trusted root)."""
        return self._verifier is not None

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()

    def check_trust(self, stamps: dict[bytes, list[Origin]] | None = None) -> None:
        """Refuse to serve a signed origin without a trusted root to verify it from."""
        if self._verifier is not None:
            return
        signed = [origins[0] for origins in (self._stamps() if stamps is None else stamps).values()]
        if signed:
            raise TrustMissing(f"{signed[0].location.url} is signed: give `depot serve --trust ROOT.json` "
                               "(the repository's root metadata, as players install with) to verify what it serves")

    def refresh(self) -> bool:
        """Read the origins' state again if a timestamp changed; True if the state answered
        from did. What does not verify is refused (and kept in ``refused``); the state read
        last stays. Raises the first refusal when nothing newer verified."""
        with self._refreshing:
            try:
                changed, refused = self._refresh()
            except DepotError as exc:
                self.refused = [(None, exc)]
                raise
            self.refused = refused
            if refused and not changed:
                raise _again(refused[0][1])
            return changed

    def _refresh(self) -> tuple[bool, list[tuple[str | None, DepotError]]]:
        stamps = self._stamps()
        self.check_trust(stamps)
        if not stamps:
            if self._verifier is not None:
                raise TrustMissing("the origins serve no signed metadata (no metadata/timestamp.json), but the "
                                   "service was given a trusted root: an unsigned origin is never served in its place")
            view = _View(b"")
            self._read_listing(view)
            self._use(view)
            return True, []
        # Newest first, by the version each timestamp claims (verified only when read), each
        # mirror's metadata read from that mirror first: one that does not verify is passed
        # over for the next. A mirror at or behind the state answered from is not looked at.
        current = self._view
        behind = current.timestamp_version if current is not None else None  # None: no signed state read yet
        newer = [(stamp, origin) for stamp, origins in stamps.items() for origin in origins
                 if current is None or behind is None
                 or stamp != current.stamp and _claimed_version(stamp) > behind]
        newer.sort(key=lambda found: -_claimed_version(found[0]))
        refused: list[tuple[str | None, DepotError]] = []
        for stamp, origin in newer:
            view = _View(stamp)
            try:
                self._read_signed(view, origin)
                self._use(view)
            except DepotError as exc:
                refused.append((origin.name, exc))
                continue
            return True, refused
        return False, refused

    def _use(self, view: _View) -> None:
        """Read the plan indexes ``view`` names, then answer from it."""
        for product in view.versions:
            view.versions[product] = sort_versions(view.versions[product])
            index_key = layout.plan_index_key(product)
            try:
                view.indexes[product] = self._document(index_key, PlanIndex.from_bytes, view)
            except NotFound:
                view.indexes[product] = None
        self._view = view  # whole, then in use: a request sees the old state or the new

    def _stamps(self) -> dict[bytes, list[Origin]]:
        """The timestamps the origins serve, each with the origins serving it (in order);
        none from unsigned origins. STORE_UNAVAILABLE if no origin answers."""
        key = layout.metadata_key("timestamp")

        def read(origin: Origin) -> bytes | DepotError:
            try:
                return origin.store.get(key)
            except DepotError as exc:
                return exc

        found: dict[bytes, list[Origin]] = {}
        origins = self.ordered()
        answers = _in_parallel(read, origins)
        for origin, answer in zip(origins, answers):
            if isinstance(answer, bytes):
                found.setdefault(answer, []).append(origin)
        if not found and not any(isinstance(a, NotFound) for a in answers):
            raise StoreUnavailable(f"{key}: no origin answered ({answers[-1]})")
        return found

    def _read_signed(self, view: _View, origin: Origin) -> None:
        """Verify the metadata of the mirror that serves ``view.stamp``, read from it first
        (then from the others: a document it lacks)."""
        assert self._verifier is not None, "check_trust refuses a signed origin without a trusted root"
        # only the roles signed since are read
        verified = self._verifier.read(view.stamp, origin.name, lambda key: self._get(key, first=(origin,)))
        view.targets.update(verified.targets)
        view.expires, view.timestamp_version = verified.expires, verified.timestamp_version
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
        """The version's manifest; an embargoed version's opened with its released key,
        CONTENT_LOCKED before release."""
        if version not in self.versions(product):
            raise NotFound(f"{product} has no published version {version!r}")
        answers = self.view().answers
        sealed_by = ("sealed-by", product, version)  # the key id of a sealed manifest, None if not sealed
        locked_by = answers.get(sealed_by)
        if isinstance(locked_by, str):
            self._released_key(product, version, locked_by)  # still locked: said without a read
        name = layout.manifest_key(product, version)

        def parse(data: bytes, where: str) -> tuple[str | None, Manifest]:
            key_id = sealed.key_id(data, name) if sealed.is_sealed(data) else None
            answers[sealed_by] = key_id
            find = lambda wanted: self._released_key(product, version, wanted)  # noqa: E731
            return key_id, Manifest.from_bytes(sealed.open_document(data, name, find), where)

        key_id, m = self._document(name, parse)  # kept parsed with its key id, across refreshes
        answers[sealed_by] = key_id
        return m

    def content_key(self, product: str, version: str) -> ContentKey:
        """An embargoed version's content key, once released: NOT_FOUND for a version that
        is not embargoed; CONTENT_LOCKED while it is locked (see ``_released_key``)."""
        sealed_by = ("sealed-by", product, version)
        if sealed_by not in self.view().answers:
            self.manifest(product, version)  # learns whether it is sealed, and with which key
        key_id = self.view().answers.get(sealed_by)
        if not isinstance(key_id, str):
            raise NotFound(f"{product} {version} is not embargoed: its content needs no key")
        return self._released_key(product, version, key_id)

    def _released_key(self, product: str, version: str, key_id: str) -> ContentKey:
        """The published key ``key_id`` of an embargoed version. CONTENT_LOCKED, with the
        release time when one is scheduled, while it is not published, or while the time
        its release document says is still to come on ``clock`` (a key published early)."""
        try:
            release: Release | None = self._document(layout.release_key(product, version), Release.from_bytes)
        except NotFound:
            release = None
        at = release.when.timestamp() if release is not None and release.key_id == key_id else None
        if at is None or self.clock() >= at:
            try:
                return self._document(layout.content_key_key(product, key_id), ContentKey.from_bytes)
            except NotFound:
                pass
        if at is not None and self.clock() < at:
            raise ContentLocked(f"{product} {version} is embargoed until {iso_time(at)}: pre-load it now, it unlocks "
                                "then", iso_time(at), at - self.clock())
        raise ContentLocked(f"{product} {version} is embargoed: its content key is not released yet"
                            + (f" (its release was due at {iso_time(at)})" if at is not None else ""),
                            iso_time(at) if at is not None else None)

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


def _claimed_version(stamp: bytes) -> float:
    """The version a timestamp claims, before it is verified: only the order mirrors are
    tried in (one that cannot be read is tried first, and refused)."""
    try:
        version = json.loads(stamp)["signed"]["version"]
    except (ValueError, TypeError, KeyError):
        return math.inf
    return version if isinstance(version, int) else math.inf


def _again(exc: DepotError) -> DepotError:
    """A refusal raised once more, as a new error of its kind."""
    return type(exc)(str(exc))


def iso_time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
