"""The client's side of TUF: python-tuf's ngclient, fed through depot's own origins (paths,
``s3://``, ``http(s)://``, with their retries and failover), from a trusted root. What it
refuses becomes depot's own errors, one per attack (see docs/trust.md)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

from tuf.api import exceptions
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from .. import layout
from ..errors import (DepotError, MetadataExpired, MetadataRollback, NotFound, SignatureInvalid, StoreUnavailable,
                      TargetMismatch, TrustMissing)
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
    """python-tuf's refusals as depot's errors."""
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
    except OSError as exc:
        raise StoreUnavailable(f"{where}: cannot keep trusted metadata ({exc})") from None


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
    the signed description of each document."""

    def __init__(self, get: Callable[[str], bytes], anchor: Anchor, where: str):
        self.anchor = anchor
        self.where = where
        with _refused(where):
            self._updater = Updater(str(anchor.metadata_dir), f"{_BASE}metadata/", None, _BASE,
                                    fetcher=_OriginFetcher(get), bootstrap=anchor.root)
            self._updater.refresh()

    def target(self, key: str) -> SignedTarget:
        with _refused(f"{self.where}: {key}"):
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
