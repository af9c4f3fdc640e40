"""The signed metadata a store has committed to: what publish copies to an origin and gc
keeps. Read with python-tuf, which is loaded only for a signed repository. Metadata that
cannot be read is MANIFEST_INVALID naming it: neither publish nor gc guesses past it."""

from __future__ import annotations

from .. import layout
from ..errors import ManifestInvalid

TIMESTAMP, SNAPSHOT = "timestamp", "snapshot"  # TUF's role names


def read(store, key: str, data: bytes | None = None):
    """The metadata at ``key`` (or its bytes ``data``), parsed."""
    from tuf.api.metadata import Metadata
    from tuf.api.serialization import DeserializationError

    try:
        return Metadata.from_bytes(store.get(key) if data is None else data)
    except DeserializationError as exc:
        raise ManifestInvalid(f"{store.url_of(key)}: not valid signed metadata ({exc})") from None


def committed_metadata(store, roots: list[str] | None = None,
                       snapshot: str | None = None) -> tuple[list[str], bytes]:
    """Every root, the snapshot ``timestamp.json`` names (or the key ``snapshot``) and the
    roles that snapshot names (their keys); and the timestamp's bytes, which commit to them."""
    ts_key = layout.metadata_key(TIMESTAMP)
    timestamp = store.get(ts_key)
    snap_key = snapshot or layout.metadata_key(SNAPSHOT, read(store, ts_key, timestamp).signed.snapshot_meta.version)
    snap = read(store, snap_key)
    if roots is None:
        roots = [k for k in store.list(layout.METADATA_PREFIX) if layout.metadata_role_of(k)[1] == "root"]
    keys = list(roots) + [snap_key]
    keys += [layout.metadata_key(name.removesuffix(".json"), meta.version) for name, meta in snap.signed.meta.items()]
    return keys, timestamp


def product_targets(store, key: str) -> dict[str, str]:
    """What the product role at ``key`` signs: each document's path and SHA-256."""
    return {path: info.hashes["sha256"] for path, info in read(store, key).signed.targets.items()}


def is_product_role(key: str) -> bool:
    return layout.metadata_role_of(key)[1].startswith("product-")
