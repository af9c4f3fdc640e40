"""The signed metadata a store has committed to: what publish copies to an origin and gc
keeps. Read with python-tuf, which is loaded only for a signed repository."""

from __future__ import annotations

from .. import layout

TIMESTAMP, SNAPSHOT = "timestamp", "snapshot"  # TUF's role names


def committed_metadata(store, roots: list[str] | None = None,
                       snapshot: str | None = None) -> tuple[list[str], bytes]:
    """Every root, the snapshot ``timestamp.json`` names (or the key ``snapshot``) and the
    roles that snapshot names (their keys); and the timestamp's bytes, which commit to them."""
    from tuf.api.metadata import Metadata

    timestamp = store.get(layout.metadata_key(TIMESTAMP))
    snap_key = snapshot or layout.metadata_key(SNAPSHOT, Metadata.from_bytes(timestamp).signed.snapshot_meta.version)
    snap = Metadata.from_bytes(store.get(snap_key))
    if roots is None:
        roots = [k for k in store.list(layout.METADATA_PREFIX) if k.endswith(".root.json")]
    keys = list(roots) + [snap_key]
    keys += [layout.metadata_key(name.removesuffix(".json"), meta.version) for name, meta in snap.signed.meta.items()]
    return keys, timestamp
