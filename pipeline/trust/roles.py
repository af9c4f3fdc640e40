"""The TUF roles of a repository, and reading their committed metadata.

Roles: ``root``, ``targets``, ``snapshot`` and ``timestamp``, and one ``product-<P>`` role
per product. Each version of a role is a file under ``metadata/``. ``timestamp.json``
names the current snapshot; the snapshot names the current version of every targets role.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tuf.api.metadata import DelegatedRole, Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from .. import layout
from ..errors import NotFound
from ..storage import WriteStore

ROOT, TARGETS, SNAPSHOT, TIMESTAMP = "root", "targets", "snapshot", "timestamp"
SERIALIZER = JSONSerializer(compact=True)


def product_role(product: str) -> str:
    return f"product-{layout.check_product(product)}"


def product_paths(product: str) -> list[str]:
    """The target paths a product's role may sign: its documents, and nothing else."""
    return [f"products/{product}/*/*", f"products/{product}/*/*/*"]


def expiry(lifetime: datetime.timedelta) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + lifetime


def _get(store: WriteStore, role: str, version: int | None = None) -> bytes:
    key = layout.metadata_key(role, version)
    try:
        return store.get(key)
    except NotFound:
        if role == TIMESTAMP:
            raise NotFound(f"{store.url} is not signed (no {key}): run `depot trust init` first") from None
        raise


def read_root(store: WriteStore, version: int) -> Metadata[Root]:
    return Metadata[Root].from_bytes(_get(store, ROOT, version))


def read_timestamp(store: WriteStore) -> Metadata[Timestamp]:
    return Metadata[Timestamp].from_bytes(_get(store, TIMESTAMP))


def read_snapshot(store: WriteStore, version: int) -> Metadata[Snapshot]:
    return Metadata[Snapshot].from_bytes(_get(store, SNAPSHOT, version))


def read_targets(store: WriteStore, role: str, version: int) -> Metadata[Targets]:
    """``targets`` or a product's delegated role."""
    return Metadata[Targets].from_bytes(_get(store, role, version))


def delegated_roles(top: Targets) -> dict[str, DelegatedRole]:
    """The roles ``top`` delegates to by name (none if it delegates nothing)."""
    if top.delegations is None:
        return {}
    roles = top.delegations.roles
    assert roles is not None, "delegations here are always by name, never succinct"
    return roles


def current_root(store: WriteStore) -> Metadata[Root]:
    """The newest root of a signed repository (a root without ``timestamp.json`` is left by
    an init that did not finish: not a root of trust)."""
    if not store.has(layout.metadata_key(TIMESTAMP)):
        raise NotFound(f"{store.url} is not signed: run `depot trust init` first")
    versions = [version for version, role in map(layout.metadata_role_of, store.list(layout.METADATA_PREFIX))
                if role == ROOT]
    if not versions:
        raise NotFound(f"{store.url} is not signed: run `depot trust init` first")
    return read_root(store, max(versions))


@dataclass(frozen=True)
class Committed:
    """The metadata as last committed: the newest root, the timestamp, the snapshot it
    names, and the top-level targets that snapshot names."""

    root: Metadata[Root]
    timestamp: Metadata[Timestamp]
    snapshot: Metadata[Snapshot]
    targets: Metadata[Targets]


def committed(store: WriteStore) -> Committed:
    """The metadata as last committed; NotFound in an unsigned repository."""
    root = current_root(store)
    ts = read_timestamp(store)
    snap = read_snapshot(store, ts.signed.snapshot_meta.version)
    top = read_targets(store, TARGETS, snap.signed.meta[f"{TARGETS}.json"].version)
    return Committed(root, ts, snap, top)
