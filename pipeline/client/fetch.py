"""Fetching verified chunks from one or more origins, with retries, failover and a rate limit.

Every transient failure (connection reset, timeout, 5xx, a short body, bytes that do not
match the chunk id) is retried with exponential backoff, then the next origin is tried.
An origin that keeps failing is tried last from then on, so a dead region costs one
round of retries, not one per chunk. What finally fails carries the service's codes:
``CDN_UNREACHABLE`` when no origin answered, ``FILE_HASH_MISMATCH`` when origins
answered with wrong bytes, ``NOT_FOUND`` when none has the object.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from typing import TYPE_CHECKING, Callable, TypeVar, overload

from .. import layout
from ..core.rate import RateLimiter
from ..errors import (CdnUnreachable, ContentAuthenticationFailed, FileHashMismatch, IntegrityError, ManifestInvalid,
                      NotFound, StoreUnavailable, TargetMismatch)
from ..formats import sealed
from ..formats.content_key import ContentKey
from ..formats.manifest import Chunk
from ..storage import ReadStore, retry
from ..storage.content import check_patch
from ..storage.location import join

if TYPE_CHECKING:  # python-tuf takes a quarter of a second to import: only when trust is used
    from ..trust.anchors import Anchor
    from ..trust.checking import TrustedMetadata

T = TypeVar("T")
DOWN_AFTER = 3  # consecutive failures before an origin goes to the back of the line


@dataclass
class OriginStats:
    url: str
    chunks: int = 0
    bytes: int = 0
    failures: int = 0
    consecutive_failures: int = 0

    def to_dict(self) -> dict:
        return {"url": self.url, "chunks": self.chunks, "bytes": self.bytes, "failures": self.failures}


@dataclass
class Fetcher:
    origins: list[ReadStore]
    retries: int = 3
    backoff: float = 0.1
    rate: RateLimiter | None = None
    stats: list[OriginStats] = field(default_factory=list)
    retried: int = 0
    trust: TrustedMetadata | None = None  # None: an unsigned repository, for development only
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)  # the backoff's wait: a test passes its own
    keys: sealed.KeyFinder | None = None  # the content keys of sealed chunks (client.keys), once a manifest names any
    staged: ReadStore | None = None  # objects pre-loaded into the game directory: read before any origin
    staged_chunks: int = 0  # chunks read from ``staged``, and their objects' bytes: not downloaded
    staged_bytes: int = 0
    stopped: threading.Event = field(default_factory=threading.Event, repr=False)  # set on Ctrl-C: no more waits

    def __post_init__(self):
        self.stats = [OriginStats(o.url) for o in self.origins]
        self._lock = threading.Lock()

    def _policy(self, call: Callable[[], T]) -> T:
        """``call()`` with the one retry policy (storage.retry): a wait doubling from
        ``backoff``, no jitter, on ``sleep``; bytes that do not match are retried too."""
        return retry.policy(self.retries, self.backoff, jitter=False, on=(IntegrityError, StoreUnavailable),
                            sleep=lambda seconds: self.sleep(seconds), on_retry=self._retried)(call)

    def _retried(self) -> None:
        with self._lock:
            self.retried += 1

    def _order(self) -> list[int]:
        with self._lock:
            return sorted(range(len(self.origins)), key=lambda i: self.stats[i].consecutive_failures >= DOWN_AFTER)

    def _count(self, i: int, ok: bool, nbytes: int = 0) -> None:
        with self._lock:
            s = self.stats[i]
            if ok:
                s.chunks += 1
                s.bytes += nbytes
                s.consecutive_failures = 0
            else:
                s.failures += 1
                s.consecutive_failures += 1

    @overload
    def get(self, key: str, check: None = None, budget: int = 0, absent_if_any_says_so: bool = False,
            only: int | None = None) -> bytes: ...

    @overload
    def get(self, key: str, check: Callable[[bytes], T], budget: int = 0, absent_if_any_says_so: bool = False,
            only: int | None = None) -> T: ...

    def get(self, key: str, check: Callable[[bytes], T] | None = None, budget: int = 0,
            absent_if_any_says_so: bool = False, only: int | None = None) -> bytes | T:
        """The object at ``key`` from the first origin that delivers it (or from
        ``origins[only]`` alone); ``check(bytes)`` raises IntegrityError for bytes that
        must not be used. An object some origins do not have while others cannot be
        reached is CDN_UNREACHABLE (a lagging mirror), or NOT_FOUND with
        ``absent_if_any_says_so``."""
        unreachable: list[str] = []
        wrong: list[IntegrityError] = []
        missing: list[str] = []

        def attempt(i: int) -> bytes | T:
            if self.rate is not None and budget and not self.rate.acquire(budget, self.stopped):
                raise KeyboardInterrupt  # stopped while it waited its share of the rate
            try:
                data = self.origins[i].get(key)
                result = check(data) if check else data
            except IntegrityError as exc:
                self._count(i, False)
                wrong.append(exc)
                raise
            except StoreUnavailable as exc:
                self._count(i, False)
                unreachable.append(str(exc))
                raise
            self._count(i, True, len(data))
            return result

        for i in self._order() if only is None else [only]:
            try:
                return self._policy(functools.partial(attempt, i))
            except NotFound:
                missing.append(self.origins[i].url)  # permanent for this origin
            except (IntegrityError, StoreUnavailable):
                pass  # this origin's tries ran out: the next origin
        sealing_refused = sum(isinstance(exc, ContentAuthenticationFailed) for exc in wrong)
        if wrong and sealing_refused == len(wrong):
            raise ContentAuthenticationFailed(f"{key}: every origin served a sealed object that does not authenticate "
                                              f"({wrong[-1]})")
        if wrong:
            raise FileHashMismatch(f"{key}: every origin served bytes that do not match ({wrong[-1]})")
        if unreachable and not (missing and absent_if_any_says_so):
            raise CdnUnreachable(f"{key}: no origin could deliver it ({unreachable[-1]})")
        raise NotFound(f"{key}: not found on any origin ({', '.join(missing)})")

    def check_with(self, anchor: Anchor) -> None:
        """Check every document against the signed metadata, from the trusted root of
        ``anchor``. Each origin's metadata is read from that origin alone: one a mirror
        serves that is refused (stale, tampered, expired, unreadable) is passed over for
        the next origin's, in order."""
        from ..trust.checking import TrustedMetadata

        self.trust = TrustedMetadata.of_mirrors(
            [(o.url, functools.partial(self.get, only=i)) for i, o in enumerate(self.origins)], anchor)

    @overload
    def chunk(self, chunk: Chunk) -> bytes: ...

    @overload
    def chunk(self, chunk: Chunk, use: Callable[[bytes], T], guard: AbstractContextManager | None = None) -> T: ...

    def chunk(self, chunk: Chunk, use: Callable[[bytes], T] | None = None,
              guard: AbstractContextManager | None = None) -> bytes | T:
        """A whole chunk's bytes (``chunk.size`` of them), verified against its id; with
        ``use``, what ``use(bytes)`` returns, decoded and used while ``guard`` is held
        (a bound on the decoded chunks held at once). A sealed chunk is opened with its key
        in the same pass; one pre-loaded (``staged``) is read from there, not downloaded."""
        key = layout.chunk_key(chunk.id, chunk.key_id)

        def decoded(stored: bytes) -> bytes | T:
            with guard or contextlib.nullcontext():
                data = sealed.open_chunk(chunk.id, chunk.key_id, stored, chunk.size, self._key)
                return use(data) if use is not None else data

        if self.staged is not None:
            try:
                stored = self.staged.get(key)
                result = decoded(stored)
            except (NotFound, IntegrityError):
                pass  # not pre-loaded, or damaged since: from an origin
            else:
                with self._lock:
                    self.staged_chunks += 1
                    self.staged_bytes += len(stored)
                return result
        return self.get(key, decoded, chunk.stored_size)

    def _key(self, key_id: str) -> ContentKey | None:
        return self.keys(key_id) if self.keys is not None else None

    def patch(self, patch_id: str, size: int, key: ContentKey | None = None, plan: str = "") -> bytes:
        """A patch's bytes, verified against its id (that of its object: sealed, when the
        plan ``plan`` is sealed with ``key``, then opened)."""
        data = self.get(layout.patch_key(patch_id), lambda data: check_patch(patch_id, data), size)
        return sealed.unseal(key, plan, data) if key is not None else data

    def document(self, key: str, parse: Callable[[bytes, str], T]) -> T:
        """A document, parsed and validated (``parse`` is a document's ``from_bytes``). With
        trust, its bytes are the ones the signed metadata names, downloaded by their hash;
        without, an origin that serves a broken one is treated like one that serves a
        broken chunk."""
        if self.trust is not None:
            target = self.trust.target(key)
            try:
                return parse(self.get(target.hashed_key, target.check, target.length), key)
            except FileHashMismatch as exc:
                raise TargetMismatch(f"{key}: {exc}") from None

        def checked(data: bytes) -> T:
            try:
                return parse(data, key)
            except ManifestInvalid as exc:
                raise IntegrityError(str(exc)) from exc

        try:
            return self.get(key, checked)
        except FileHashMismatch as exc:
            raise ManifestInvalid(str(exc)) from None

    def prefetch(self, keys: list[str]) -> None:
        """Tell origins that can get ready (a lookup service's signed links) what is coming."""
        for origin in self.origins:
            ready = getattr(origin, "prefetch", None)
            if ready is not None:
                try:
                    ready(keys)
                except StoreUnavailable:
                    pass  # each object will ask on its own

    @property
    def trust_id(self) -> str:
        """Which trusted root checked what this fetcher read ("" for an unsigned origin)."""
        return self.trust.anchor.path.name if self.trust is not None else ""

    def url_of(self, key: str) -> str:
        """Where ``key`` is looked for first (for messages: origins are tried in turn)."""
        return join(self.origins[0].url, key) if self.origins else key
