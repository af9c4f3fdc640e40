"""publish: push versions of a product from the repository to CDN origins, in commit order.

On every origin, in this order, so that nothing ever names an object that is not there:

1. data: the versions' chunks, and the patches of the plans to them;
2. documents: the manifests, the plans to the versions, the plan index (and, in a signed
   repository, each under its SHA-256 too, as clients download them);
3. channel pointers: those asked for, and in a signed repository every pointer (and plan
   index) of the product, and of each other product the origin already carries, exactly
   as the signed metadata being published names it, with the versions they deliver
   pushed first if the origin lacks them: an origin gets metadata only once it holds
   everything that metadata points its players at. A product the origin does not carry
   is not pushed there by another product's publish;
4. signed metadata: every root, the current snapshot and the roles it names;
5. ``timestamp.json``, the commit: replaced only if the origin's is older (a racing
   publisher with newer metadata wins, and nothing goes back), or if this repository's
   timestamp key did not sign it (forged: players never trusted it).

An origin mirrors one repository: one holding another repository's roots is refused
(``VersionConflict``) before anything is written there. Signed metadata the origin holds
under our names with other bytes is not "already there": ours replaces it before our
timestamp names it.

Pointers and plan indexes are replaced by compare-and-swap. A pointer never replaces one
with a higher serial. In a signed repository a plan index never replaces one that a newer
signature names; in an unsigned one it has nothing to be ordered by, and the last
publisher's index wins.

Every step skips what the origin already has and can be run again: a publish killed
anywhere finishes when it is run again. A version whose manifest is on an origin has all
its data there. A publish interrupted (Ctrl-C) stops its uploads within moments; before
the commit nothing it sent is live, and a commit once begun completes. An origin that
fails (unreachable, refused) does not stop the others: they finish and commit, and then
the publish fails with the error of the first origin that failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Sequence

from .. import layout
from ..core import codec
from ..core.progress import Progress, ignore
from ..core.rate import RateLimiter
from ..errors import ContentLocked, DepotError, IntegrityError, NotFound, VersionConflict
from ..formats import manifest as manifest_doc
from ..formats import sealed
from ..formats import release as release_doc
from ..formats.channel import Channel
from ..formats.release import Release, key_finder
from ..formats.plan import Plan
from ..formats.publish_record import COUNTS, PublishRecord
from ..storage import PrunableStore, WriteStore, marker
from ..trust import is_signed
from .metadata import committed_metadata, is_product_role, product_targets
from . import origin_metadata
from .upload import OriginReport, Uploader


@dataclass(frozen=True)
class PublishResult:
    product: str
    versions: list[str]
    origins: list[OriginReport] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {"product": self.product, "versions": self.versions, "origins": [o.to_dict() for o in self.origins],
                "elapsed_s": self.elapsed_s}


@dataclass
class _Release:
    """What publishing some versions of some products puts on an origin."""

    repo: WriteStore
    signed: bool
    data: dict[str, int] = field(default_factory=dict)  # chunk and patch keys -> stored size
    documents: dict[str, bytes] = field(default_factory=dict)  # immutable documents (and hashed copies)
    mutable: dict[str, bytes] = field(default_factory=dict)  # plan indexes, channel pointers, releases
    versions: list[tuple[str, str]] = field(default_factory=list)
    keys: sealed.KeyFinder | None = None  # the release side's content keys: sealed manifests before release
    releases: dict[str, str] = field(default_factory=dict)  # signed release documents -> their SHA-256

    def add_version(self, product: str, version: str) -> None:
        m = self._manifest(product, version)
        for ref in m.unique_chunks().values():
            self.data[layout.chunk_key(ref.id, ref.key_id)] = ref.stored_size
        if self.repo.has(layout.preload_key(product, version)):  # an embargoed version's: what players pre-load
            self._document(layout.preload_key(product, version))
        self._document(layout.manifest_key(product, version))
        release = layout.release_key(product, version)
        if self.repo.has(release):  # an embargoed version's: when it unlocks, and with its key once it has
            r = Release.from_bytes(self._document(release, mutable=True), release)
            key = layout.content_key_key(product, r.key_id)
            if self.repo.has(key):
                self._document(key)
        for key in self.repo.list(layout.plans_prefix(product)):
            pair = layout.plan_pair_of(key)
            if pair and pair[1] == version:
                opened = sealed.open_document(self._document(key), key, key_finder(self.repo, product, self.keys))
                for op in Plan.from_bytes(opened, key).files:
                    for s in op.segments:
                        self.data[layout.patch_key(s.id)] = s.patch_size
        self.add_plan_index(product)
        self.versions.append((product, version))

    def _manifest(self, product: str, version: str) -> manifest_doc.Manifest:
        """The version's manifest, opened if sealed: with its published key, else the
        release side's (what an embargoed version is published with before release)."""
        key = layout.manifest_key(product, version)
        try:
            return manifest_doc.load(_Opened(self.repo, key_finder(self.repo, product, self.keys)), product, version)
        except ContentLocked:
            raise ContentLocked(f"{product} {version} is embargoed: publishing it before release needs its content "
                                "key (--keys DIR, where the release side keeps it)") from None

    def add_pointer(self, product: str, channel: str) -> str:
        """A channel pointer as the repository has it; the version it delivers."""
        key = layout.channel_key(product, channel)
        return Channel.from_bytes(self._document(key, mutable=True), key).version

    def add_live_documents(self, metadata_keys: list[str], products: set[str]) -> set[tuple[str, str]]:
        """The documents of ``products`` that change under one name (channel pointers, plan
        indexes) as the signed metadata in ``metadata_keys`` names them: those exact bytes,
        taken from their copies under their hashes, so that the metadata an origin gets
        never names a copy its players lack. Returns the versions the pointers deliver."""
        delivered = set()
        for key in metadata_keys:
            _, role = layout.metadata_role_of(key)
            if not is_product_role(key) or role.removeprefix("product-") not in products:
                continue
            for path, sha256 in product_targets(self.repo, key).items():
                if layout.channel_of(path) or path.endswith("/plans/index.json"):
                    hashed = layout.hashed_target_key(path, sha256)
                    data = self.repo.get(hashed)
                    self.documents[hashed] = self.mutable[path] = data
                    if layout.channel_of(path):
                        pointer = Channel.from_bytes(data, hashed)
                        delivered.add((pointer.product, pointer.version))
                elif layout.content_key_of(path):  # released keys: what sealed objects are opened with
                    hashed = layout.hashed_target_key(path, sha256)
                    self.documents[hashed] = self.documents[path] = self.repo.get(hashed)
                elif (layout.version_document_of(path) or ("", "", ""))[2] == "release.json":
                    self.releases[path] = sha256
        return delivered

    def add_releases(self, on_origin: set[str]) -> None:
        """The signed release documents of the versions the origin holds or gets."""
        pushed = {layout.manifest_key(p, v) for p, v in self.versions}
        for path, sha256 in self.releases.items():
            product, version, _ = layout.version_document_of(path) or ("", "", "")
            if layout.manifest_key(product, version) in on_origin | pushed:
                hashed = layout.hashed_target_key(path, sha256)
                self.documents[hashed] = self.mutable[path] = self.repo.get(hashed)

    def add_plan_index(self, product: str) -> None:
        index = layout.plan_index_key(product)
        if index not in self.mutable and self.repo.has(index):
            self._document(index, mutable=True)

    def newer_hashes(self, metadata_keys: list[str], origin: WriteStore) -> set[str]:
        """The SHA-256 of every pointer and plan index named by a product role newer than
        the one in ``metadata_keys``, as the repository or the origin holds it: documents
        newer than ours (a publisher that read the repository earlier, or a copy of it)."""
        ours = dict(layout.metadata_role_of(k)[::-1] for k in metadata_keys)
        found = set()
        newer: dict[str, WriteStore] = {}
        for store in (self.repo, origin):
            for key in store.list(layout.METADATA_PREFIX):
                version, role = layout.metadata_role_of(key)
                if role.startswith("product-") and role in ours and version > ours[role]:
                    newer.setdefault(key, store)
        for key, store in newer.items():
            with contextlib.suppress(DepotError):  # unreadable: names nothing newer
                for path, sha256 in product_targets(store, key).items():
                    if layout.channel_of(path) or path.endswith("/plans/index.json"):
                        found.add(sha256)
        return found

    def _document(self, key: str, mutable: bool = False) -> bytes:
        data = self.repo.get(key)
        (self.mutable if mutable else self.documents)[key] = data
        if self.signed:  # the copy clients download, named by its hash: never replaced
            self.documents[layout.hashed_target_key(key, hashlib.sha256(data).hexdigest())] = data
        return data


def publish(repo: WriteStore, origins: list[PrunableStore], product: str, versions: list[str],
            channels: Sequence[str] = (), jobs: int = 16, retries: int = 5, rate: RateLimiter | None = None,
            progress: Progress = ignore, verify: bool = False, keys: sealed.KeyFinder | None = None) -> PublishResult:
    """Push ``versions`` of ``product`` (and the channel pointers ``channels``) to every
    origin, all origins at once; see the module docstring for the order. ``keys``: the
    release side's content keys, which open the manifests of embargoed versions (their
    objects are pushed sealed, as they are)."""
    started = time.monotonic()
    for v in versions:
        if not repo.has(layout.manifest_key(product, v)):
            raise NotFound(f"{product} {v} has no manifest in {repo.url}: chunk it before publishing")
    committed = _checked_metadata(repo)
    reports = on_every_origin(origins, lambda o, cancel: _publish_to(repo, o, product, versions, list(channels), jobs,
                                                                     retries, rate, progress, verify, cancel,
                                                                     content_keys=keys, committed=committed))
    result = PublishResult(product, list(versions), reports, round(time.monotonic() - started, 3))
    _record(repo, result)
    return result


def _checked_metadata(repo: WriteStore) -> tuple[list[str], bytes] | None:
    """A signed repository's committed metadata (None if unsigned), read once for every
    origin, and checked as players check it before any origin gets it."""
    if not is_signed(repo):
        return None
    from .verify_metadata import verify_metadata

    committed = committed_metadata(repo)
    verify_metadata(repo, *committed)
    return committed


def on_every_origin(origins: list[PrunableStore], work) -> list:
    """``work(origin, cancel)`` on every origin at once, results in order. An origin that
    fails does not stop the others: each healthy origin gets its commit, and then the
    first failure, in the order of ``origins``, is raised. Interrupted (KeyboardInterrupt
    in this thread), it raises the cancel flag the uploads check, waits for them to stop,
    and re-raises, unless every origin got its work done all the same: then the interrupt
    came too late to stop anything (a commit once begun completes), and the results stand."""
    cancel = threading.Event()
    pool = cf.ThreadPoolExecutor(max(1, len(origins)))
    futures: list[cf.Future] = []
    try:
        for o in origins:
            futures.append(pool.submit(work, o, cancel))
        cf.wait(futures)
    except KeyboardInterrupt:
        cancel.set()
        pool.shutdown(wait=True)
        if len(futures) < len(origins) or any(f.exception() for f in futures):
            raise
    finally:
        pool.shutdown(wait=True)
    return [f.result() for f in futures]


def _record(repo: WriteStore, result: PublishResult) -> None:
    """Keep what was pushed where, for the stats (``logs/publishes/``)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    sealed_by = {v: release_doc.sealed_key_id(repo, result.product, v) for v in result.versions}
    released = {v for v, key_id in sealed_by.items() if key_id and release_doc.is_released(repo, result.product, key_id)}
    record = PublishRecord(f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", f"{now:%Y-%m-%dT%H:%M:%SZ}",
                           result.product, tuple(result.versions),
                           tuple({"origin": o.origin, **{k: getattr(o, k) for k in COUNTS}, "elapsed_s": o.elapsed_s}
                                 for o in result.origins),
                           tuple(v for v in result.versions if sealed_by[v] and v not in released),
                           tuple(v for v in result.versions if v in released))
    repo.put_if_absent(layout.publish_record_key(result.product, record.id), record.to_bytes())


def push_live(repo: WriteStore, origin: PrunableStore, product: str, jobs: int = 16, retries: int = 5,
              progress: Progress = ignore, cancel: threading.Event | None = None,
              content_keys: sealed.KeyFinder | None = None) -> OriginReport:
    """Bring ``product``'s current documents (pointers, plan index) and, in a signed
    repository, the signed metadata to ``origin``, in commit order: what retiring a version
    there needs first. It moves no channel there: where the repository's pointer would
    make a channel deliver another version, ``VersionConflict`` before anything is written."""
    return _publish_to(repo, origin, product, [], [], jobs, retries, None, progress, False, cancel,
                       moves_channels=False, content_keys=content_keys, committed=_checked_metadata(repo))


def _refuse_moves(up: Uploader, release: _Release) -> None:
    """``VersionConflict`` naming the first channel the pointers of ``release`` would point
    at another version on the origin (one there with a higher serial is never replaced)."""
    for key, ours in sorted(release.mutable.items()):
        if layout.channel_of(key) is None:
            continue
        pointer = Channel.from_bytes(ours, key)
        try:
            theirs = Channel.from_bytes(up.retrying(lambda: up.origin.get(key)), up.origin.url_of(key))
        except NotFound:
            theirs = None
        if theirs is None or theirs.version != pointer.version and theirs.serial < pointer.serial:
            there = f"{theirs.version} there" if theirs else "nothing there"
            raise VersionConflict(
                f"{up.origin.url}: {pointer.product} {pointer.channel} delivers {there} and {pointer.version} in the "
                f"repository: publish that move there first (depot publish -p {pointer.product} -v "
                f"{pointer.version} --origin {up.origin.url})")


def _newer_pointer(key: str, theirs: bytes, ours: bytes) -> bool:
    try:
        return Channel.from_bytes(theirs, key).serial > Channel.from_bytes(ours, key).serial
    except DepotError:  # not a pointer we can read: ours replaces it
        return False


def _publish_to(repo: WriteStore, origin: PrunableStore, product: str, versions: list[str], channels: list[str],
                jobs: int, retries: int, rate: RateLimiter | None, progress: Progress, verify: bool,
                cancel: threading.Event | None = None, moves_channels: bool = True,
                content_keys: sealed.KeyFinder | None = None,
                committed: tuple[list[str], bytes] | None = None) -> OriginReport:
    started = time.monotonic()
    up = Uploader(repo, origin, jobs, retries, rate, progress, cancel)
    release = _Release(repo, is_signed(repo), keys=content_keys)
    on_origin = up.present(layout.PRODUCT_PREFIX)
    wanted = {(product, v) for v in versions}
    if release.signed:
        # Read once: what this publish commits to, whatever the repository does meanwhile.
        keys, timestamp = committed or committed_metadata(repo)
        root = origin_metadata.trusted_root(up, keys)  # another repository's origin is refused before anything is written
        carried = {p for p in map(layout.product_of, on_origin) if p is not None}
        wanted |= release.add_live_documents(keys, {product} | carried)
    else:
        release.add_plan_index(product)
    for c in channels:
        wanted.add((product, release.add_pointer(product, c)))
    if not moves_channels:
        _refuse_moves(up, release)
    for p, v in sorted(wanted):
        if p == product and v in versions or layout.manifest_key(p, v) not in on_origin:
            release.add_version(p, v)
    release.add_releases(on_origin)

    newer_hashes: list[set[str]] = []

    def newer(key: str, theirs: bytes, ours: bytes) -> bool:
        if layout.channel_of(key) and _newer_pointer(key, theirs, ours):
            return True
        if not release.signed:
            return False
        if not newer_hashes:  # read only when an origin holds other bytes than ours
            newer_hashes.append(release.newer_hashes(keys, origin))
        return hashlib.sha256(theirs).hexdigest() in newer_hashes[0]

    if layout.STORE_MARKER_KEY not in up.listing():
        up.retrying(lambda: marker.mark(origin))  # a depot origin, for gc
    up.copy(release.data, sizes=release.data)  # 1. data
    up.copy(release.documents, sizes={k: len(v) for k, v in release.documents.items()})  # 2. documents ...
    live = release.mutable  # the bytes the metadata being published names
    indexes = [k for k in live if layout.channel_of(k) is None]
    up.copy(indexes, replace=True, newer=newer, contents=live)  # ... plan indexes
    up.copy([k for k in live if k not in indexes], replace=True, newer=newer, contents=live)  # 3. pointers
    report = up.report
    if release.signed:
        replaced = [] if origin_metadata.ahead(up, root, timestamp) else origin_metadata.replace_differing(up, keys)
        up.copy([k for k in keys if k not in replaced])  # 4. signed metadata
        up.check()  # the last moment to stop: once the commit begins, it completes
        report.timestamp = origin_metadata.commit_timestamp(up, timestamp, root)  # 5. the commit
    if verify:
        report.verified = _verify(repo, origin, release, up)
    report.versions = [f"{p} {v}" for p, v in release.versions]
    report.elapsed_s = round(time.monotonic() - started, 3)
    return report


def _verify(repo: WriteStore, origin: WriteStore, release: _Release, up: Uploader) -> int:
    """Read back every object this publish relies on: chunks and patches checked against
    their ids (a chunk damaged in the repository is caught too), sealed chunks and documents
    against the repository's bytes. Returns how many were checked."""
    problems = []

    def check(key: str) -> None:
        data = up.retrying(lambda: origin.get(key))
        name = key.rsplit("/", 1)[-1]
        if key.startswith(layout.PATCH_PREFIX):
            ok = codec.chunk_id(data) == name
        elif key.startswith(layout.CHUNK_PREFIX) and "." not in name:  # a plain chunk, not a sealed one
            ok = codec.holds(name, data)
        else:
            ok = data == (release.documents[key] if key in release.documents else repo.get(key))
        if not ok:
            problems.append(key)

    keys = list(release.data) + list(release.documents)
    with cf.ThreadPoolExecutor(up.jobs) as pool:
        list(pool.map(check, keys))
    if problems:
        raise IntegrityError(f"{origin.url}: {len(problems)} of {len(keys)} objects read back wrong (not their "
                             f"id's bytes, or not the repository's), e.g. {sorted(problems)[0]}")
    return len(keys)


class _Opened:
    """A store whose sealed documents read opened, with the keys ``find`` gives."""

    def __init__(self, store: WriteStore, find: sealed.KeyFinder):
        self.store, self.find = store, find

    def get(self, key: str) -> bytes:
        return sealed.open_document(self.store.get(key), key, self.find)

    def url_of(self, key: str) -> str:
        return self.store.url_of(key)
