"""The client's side of TUF: python-tuf's ngclient, from a trusted root.

It reads through depot's own origins: paths, ``s3://`` and ``http(s)://``, with their
retries and failover. What it refuses becomes depot's own errors, one per attack (see
docs/trust.md).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from tuf.api import exceptions
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from .. import layout
from ..errors import (DepotError, IntegrityError, MetadataExpired, MetadataRollback, NotFound, SignatureInvalid,
                      StoreUnavailable, TargetMismatch, TrustError, TrustMissing)
from .anchors import Anchor

_BASE = "depot:/"  # ngclient speaks in URLs; this one is a key in whichever origin answers


class _OriginFetcher(FetcherInterface):
    def __init__(self, get: Callable[..., bytes]):
        self._get = get

    def _fetch(self, url: str) -> Iterator[bytes]:
        key = url.removeprefix(_BASE)
        try:
            # A reachable origin's "not found" answers a metadata probe (is there a newer
            # root?), even while another origin is down.
            return iter([self._get(key, absent_if_any_says_so=True)])
        except NotFound as exc:
            raise exceptions.DownloadHTTPError(str(exc), 404) from None


@contextlib.contextmanager
def _refused(where: str) -> Iterator[None]:
    """python-tuf's refusals as depot's errors. An OSError is the player's own disk, not
    the origin's doing: it is left for the caller."""
    try:
        yield
    except exceptions.ExpiredMetadataError as exc:
        raise MetadataExpired(f"{where}: {exc} (a frozen or stale origin)") from None
    except exceptions.BadVersionNumberError as exc:
        raise MetadataRollback(f"{where}: {exc} (older than metadata already trusted: a rollback)") from None
    except exceptions.UnsignedMetadataError as exc:
        raise SignatureInvalid(f"{where}: {exc}") from None
    except exceptions.LengthOrHashMismatchError as exc:
        raise TargetMismatch(f"{where}: {exc}") from None
    except exceptions.DownloadHTTPError as exc:
        if exc.status_code == 404:
            raise TrustMissing(f"{where}: the origin serves no signed metadata ({exc}): is the repository "
                               "signed (`depot trust init`)?") from None
        raise StoreUnavailable(f"{where}: {exc}") from None
    except exceptions.DownloadError as exc:
        cause = exc.__cause__
        if isinstance(cause, DepotError):
            raise cause from None
        raise StoreUnavailable(f"{where}: {exc}") from None
    except exceptions.RepositoryError as exc:
        raise SignatureInvalid(f"{where}: metadata refused: {exc}") from None


@contextlib.contextmanager
def _local_disk(anchor: Anchor) -> Iterator[None]:
    """The player's own disk failing: no other origin would help, so it is not failed over."""
    try:
        yield
    except OSError as exc:
        raise _LocalFailure(f"{anchor.metadata_dir}: cannot keep trusted metadata ({exc.strerror or exc})") from None


class _LocalFailure(StoreUnavailable):
    """The trusted metadata cannot be kept on the player's disk: no origin can help."""


def _most_telling(refusals: list[DepotError]) -> DepotError:
    """The error to fail with when no origin gives metadata that verifies: a refusal
    (tampered, rolled back, expired, unsigned) says more than an origin that could not be
    reached, which says more than one that has no metadata; among equals, the last. With
    several origins, its message names each origin and why it was passed over."""
    def rank(e: DepotError) -> int:
        if isinstance(e, TrustMissing):
            return 1
        if isinstance(e, (TrustError, IntegrityError)):
            return 3
        return 2 if not isinstance(e, NotFound) else 0

    chosen = max(reversed(refusals), key=rank)
    if len(refusals) == 1:
        return chosen
    return type(chosen)("no origin gives metadata that verifies: "
                        + "; ".join(f"{e} ({e.code})" for e in refusals))


@dataclass(frozen=True)
class SignedTarget:
    """A document as the signed metadata describes it."""

    key: str
    info: TargetFile

    @property
    def hashed_key(self) -> str:
        """Where its bytes are: consistent snapshots name a target by its hash."""
        return layout.hashed_target_key(self.key, self.info.hashes["sha256"])

    @property
    def length(self) -> int:
        return self.info.length

    def check(self, data: bytes) -> bytes:
        try:
            self.info.verify_length_and_hashes(data)
        except exceptions.LengthOrHashMismatchError as exc:
            raise TargetMismatch(f"{self.key}: the bytes served are not the signed document ({exc})") from None
        return data


class TrustedMetadata:
    """An origin's metadata, refreshed and checked from ``anchor`` once, then asked for
    the signed description of each document.

    With mirrors (``TrustedMetadata.of_mirrors``), each is a source of its own: metadata
    one refuses (a rollback, a bad signature, expired, unreadable) is passed over for the
    next, in order, the way documents and chunks fail over. Nothing refused is used, and
    python-tuf's cache keeps the highest versions verified, so a mirror can never take the
    trusted state back. The one that verified answers from then on; a document its
    metadata does not list, or a role of it that is refused, sends the client on to the
    next mirror's metadata too."""

    def __init__(self, get: Callable[..., bytes], anchor: Anchor, where: str):
        self._init([(where, get)], anchor)

    @classmethod
    def of_mirrors(cls, sources: list[tuple[str, Callable[..., bytes]]], anchor: Anchor) -> "TrustedMetadata":
        """``sources``: (origin, a reader of that origin alone), in the order to try them."""
        self = cls.__new__(cls)
        self._init(list(sources), anchor)
        return self

    def _init(self, sources: list[tuple[str, Callable[..., bytes]]], anchor: Anchor) -> None:
        self.anchor = anchor
        self._sources = sources
        self._refusals: list[DepotError] = []
        self._next = 0
        self._lock = threading.Lock()
        self._advance()

    def _advance(self) -> None:
        """Refresh from the next source whose metadata verifies; fail, naming each source,
        when none is left."""
        while self._next < len(self._sources):
            where, get = self._sources[self._next]
            self._next += 1
            try:
                with _local_disk(self.anchor), _refused(where):
                    updater = Updater(str(self.anchor.metadata_dir), f"{_BASE}metadata/", None, _BASE,
                                      fetcher=_OriginFetcher(get), bootstrap=self.anchor.root)
                    updater.refresh()
            except _LocalFailure:
                raise
            except DepotError as exc:
                self._refusals.append(exc)
                continue
            self._updater, self.where = updater, where
            return
        raise _most_telling(self._refusals)

    def target(self, key: str) -> SignedTarget:
        with self._lock:
            first: DepotError | None = None
            while True:
                try:
                    return self._target(key)
                except _LocalFailure:
                    raise
                except DepotError as exc:
                    if self._next >= len(self._sources):
                        raise first or exc from None
                    first = first or exc
                    self._refusals.append(exc)
                try:
                    self._advance()
                except DepotError:
                    raise first from None  # what the metadata that verified said

    def verified_role(self, role: str, version: int) -> Targets:
        """A product's role, verified by python-tuf on the way to one of its paths (its plan
        index, which need not be listed), at exactly ``version``. A refusal is named by the
        role, not by the path that led to it."""
        probe = layout.plan_index_key(role.removeprefix("product-"))
        refused: TargetMismatch | None = None
        try:
            self.target(probe)
        except NotFound:  # not listed: the role was loaded and verified to find that out
            pass
        except TargetMismatch as exc:  # nothing of the product signed yet: see below
            refused = exc
        except DepotError as exc:
            reason = str(exc).removeprefix(f"{self.where}: {probe}: ")
            raise type(exc)(f"{self.where}: {role} version {version}: {reason}") from None
        path = self.anchor.metadata_dir / f"{role}.json"  # python-tuf writes only what verified
        md = Metadata.from_bytes(path.read_bytes()).signed if path.exists() else None
        if not isinstance(md, Targets) or md.version != version:
            raise refused or SignatureInvalid(f"{self.where}: {role} version {version} was not verified")
        return md

    def _target(self, key: str) -> SignedTarget:
        with _local_disk(self.anchor), _refused(f"{self.where}: {key}"):
            try:
                info = self._updater.get_targetinfo(key)
            except exceptions.RepositoryError as exc:
                # A product given a release key has no metadata of its own until its first
                # documents are signed: nothing of it is signed, which is no attack.
                if "is not part of snapshot" not in str(exc):
                    raise
                product = layout.product_of(key)
                raise TargetMismatch(f"{self.where}: {key} is not signed: {product} has no signed documents yet "
                                     f"(`depot trust sign -p {product}` signs them)") from None
        if info is None:
            # Nothing listed under this name: a mistyped product, version or channel, or one
            # never signed. Tampering is bytes that differ from what is listed.
            raise NotFound(f"{self.where}: {key} not found: the repository's signed metadata does not list it")
        return SignedTarget(key, info)


def read_root(path) -> bytes:
    """A trusted root as given by an operator: refused unless it is TUF root metadata."""
    from tuf.api.metadata import Metadata, Root

    from ..errors import InvalidArgument

    try:
        data = open(path, "rb").read()
        md = Metadata.from_bytes(data)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read the trusted root ({exc.strerror})") from None
    except Exception as exc:  # python-tuf's deserialisation errors have no common base
        raise InvalidArgument(f"{path}: not TUF root metadata ({exc})") from None
    if not isinstance(md.signed, Root):
        raise InvalidArgument(f"{path}: is {md.signed.type} metadata, not the root")
    return data
