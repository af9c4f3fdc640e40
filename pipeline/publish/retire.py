"""rm: retire a version from the repository, or drop one that was never finished; and
stop offering it on origins.

A chunked version is refused while a channel delivers it. Its manifest, inventory, the
plans to and from it (and in a signed repository their copies under their hashes) go;
chunks and patches stay for gc, which removes those no retained version needs. A version
that was ingested but never chunked loses its inventory and staged pack.

On an origin, the product's current documents and the signed metadata (which no longer
name the version) go first, in publish's commit order; then the version's documents are
deleted there, the manifest last. Its data stays for gc. rm never moves a channel on an
origin: where a channel there delivers the version, or where the new metadata would
point a channel elsewhere, that origin is refused until the move is published there.
"""

from __future__ import annotations

from dataclasses import dataclass

import threading

from .. import layout
from ..core.progress import Progress, ignore
from ..errors import NotFound, VersionConflict
from ..formats.sealed import KeyFinder
from ..storage import PrunableStore, WriteStore
from .channels import channels, has_product
from .publish import on_every_origin, push_live
from .upload import Cancelled


@dataclass(frozen=True)
class RetireResult:
    product: str
    version: str
    state: str  # what it was: "chunked" or "ingested"
    removed: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Withdrawal:
    origin: str
    removed: list[str]  # the version's documents deleted there
    timestamp: str  # what became of the origin's timestamp.json: as publish reports it

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def exists(store: WriteStore, product: str, version: str) -> bool:
    """Whether ``store`` holds any document of ``version`` of ``product``."""
    return next(iter(store.list(_version_dir(product, version))), None) is not None


def require(store: WriteStore, product: str, version: str) -> None:
    """``NotFound`` naming the product, or the version, that ``store`` does not hold."""
    if not has_product(store, product):
        raise NotFound(f"{store.url} has no product {product!r}")
    if not exists(store, product, version):
        raise NotFound(f"{store.url} has no version {version} of {product}")


def retire(store: WriteStore, product: str, version: str) -> RetireResult:
    documents = list(store.list(_version_dir(product, version)))
    if not documents:
        raise NotFound(f"{store.url} has no version {version} of {product}")
    chunked = layout.manifest_key(product, version) in documents
    if chunked:
        live = [c.channel for c in channels(store, product) if c.version == version]
        if live:
            raise VersionConflict(f"{product} {version} is what channel {live[0]} delivers: promote or roll back "
                                  f"{live[0]} to another version first")
    plans = _plans_of(store, product, version)
    doomed = plans + [layout.staged_pack_key(product, version)] + sorted(documents, key=_manifest_last)
    for key in doomed:  # the manifest, the version's commit point, goes last
        store.delete(key)
    return RetireResult(product, version, "chunked" if chunked else "ingested", [k for k in doomed if k in
                                                                                  set(documents) | set(plans)])


def withdraw(repo: WriteStore, origins: list[PrunableStore], product: str, version: str, jobs: int = 16,
             retries: int = 5, progress: Progress = ignore, keys: KeyFinder | None = None) -> list[Withdrawal]:
    """Once ``version`` is retired in ``repo``: every origin stops offering it, all at once.
    No channel moves on an origin: refused (``VersionConflict``), before anything is
    written there, on an origin where a channel still delivers the version, or where the
    new metadata would move a channel (a move not published there yet); the other origins
    still finish. ``keys``: the release side's content keys (an embargoed version a pointer
    delivers is pushed first where an origin lacks it). An origin that carries nothing of
    the product is left alone."""

    def refuse_if_delivered(origin: PrunableStore) -> None:
        live = [c.channel for c in channels(origin, product) if c.version == version]
        if live:
            raise VersionConflict(f"{origin.url}: {product} {version} is what channel {live[0]} delivers there: "
                                  f"publish the move of {live[0]} to it first")

    def one(origin: PrunableStore, cancel: threading.Event) -> Withdrawal:
        if not has_product(origin, product):
            return Withdrawal(origin.url, [], "")
        refuse_if_delivered(origin)  # before anything is written there
        report = push_live(repo, origin, product, jobs, retries, progress, cancel, content_keys=keys)
        refuse_if_delivered(origin)  # moved there meanwhile
        doomed = _plans_of(origin, product, version) + sorted(origin.list(_version_dir(product, version)),
                                                               key=_manifest_last)
        for key in doomed:
            if cancel.is_set():
                raise Cancelled(origin.url)
            origin.delete(key)
        return Withdrawal(origin.url, doomed, report.timestamp)

    return on_every_origin(origins, one)


def _version_dir(product: str, version: str) -> str:
    return layout.manifest_key(product, version).rsplit("/", 1)[0] + "/"


def _plans_of(store: WriteStore, product: str, version: str) -> list[str]:
    """The plans to and from ``version``, with their copies under their hashes."""
    return [k for k in store.list(layout.plans_prefix(product))
            if version in (layout.plan_pair_of(layout.plain_key_of(k)) or ())]


def _manifest_last(key: str) -> bool:
    return layout.plain_key_of(key).endswith("/manifest.json")
