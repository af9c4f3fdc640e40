"""Creating a repository's trust: root version 1 and the first targets, snapshot and
timestamp (docs/decisions.md, "Trust init")."""

from __future__ import annotations

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from .. import layout
from ..errors import InvalidArgument, NotFound, VersionConflict
from ..formats.trust_settings import Lifetimes
from ..storage import WriteStore
from .roles import ROOT, SERIALIZER, SNAPSHOT, TARGETS, TIMESTAMP, expiry


def init(store: WriteStore, root_signers: list[Signer], threshold: int, targets: Signer, snapshot: Signer,
         timestamp: Signer, lifetimes: Lifetimes | None = None, replace_unfinished: bool = False) -> Metadata[Root]:
    """Root version 1 and the first targets, snapshot and timestamp. Refused if the
    repository is signed already (its root can only be rotated, never replaced), and if a
    root key is given for an online role (the root key stays offline).

    Everything is checked and signed before anything is written. ``1.root.json`` is
    claimed first with a create-if-absent write (of inits racing, one wins, the others stop
    with nothing written), then the settings, targets and snapshot are written, each by
    compare-and-swap against what was read, and ``timestamp.json`` last: it is the commit,
    what makes the repository signed. A failure before it removes what was written. A root
    left by an init that was killed is replaced only with ``replace_unfinished``, which
    the operator gives when no other init is running: a running init cannot be told from a
    killed one."""
    lifetimes = lifetimes or Lifetimes()
    root_ids = {s.public_key.keyid for s in root_signers}
    if not 1 <= threshold <= len(root_ids):
        raise InvalidArgument(f"root threshold {threshold} needs at least that many distinct root keys, "
                              f"{len(root_signers)} given")
    for role, s in ((TARGETS, targets), (SNAPSHOT, snapshot), (TIMESTAMP, timestamp)):
        if s.public_key.keyid in root_ids:
            raise InvalidArgument(f"--{role}-key is a root key: the root key stays offline, so an online role "
                                  "needs a key of its own")
    root = Metadata(Root(expires=expiry(lifetimes.of(ROOT)), consistent_snapshot=True))
    for s in root_signers:
        root.signed.add_key(s.public_key, ROOT)
    for role, s in ((TARGETS, targets), (SNAPSHOT, snapshot), (TIMESTAMP, timestamp)):
        root.signed.add_key(s.public_key, role)
    root.signed.roles[ROOT].threshold = threshold
    for s in root_signers:
        root.sign(s, append=True)
    top = Metadata(Targets(expires=expiry(lifetimes.of(TARGETS))))
    top.sign(targets)
    snap = Metadata(Snapshot(expires=expiry(lifetimes.of(SNAPSHOT))))
    snap.signed.meta[f"{TARGETS}.json"] = MetaFile(version=1)
    snap.sign(snapshot)
    ts = Metadata(Timestamp(expires=expiry(lifetimes.of(TIMESTAMP)), snapshot_meta=MetaFile(version=1)))
    ts.sign(timestamp)
    root_key, ts_key = layout.metadata_key(ROOT, 1), layout.metadata_key(TIMESTAMP)
    root_bytes, ts_bytes = root.to_bytes(SERIALIZER), ts.to_bytes(SERIALIZER)
    rest = [(layout.TRUST_SETTINGS_KEY, lifetimes.to_bytes()),
            (layout.metadata_key(TARGETS, 1), top.to_bytes(SERIALIZER)),
            (layout.metadata_key(SNAPSHOT, 1), snap.to_bytes(SERIALIZER))]
    signed_already = VersionConflict(f"{store.url} is signed already: its root can be rotated, not created again")
    taken_over = VersionConflict(f"{store.url}: another trust init took over the root; this one stops and "
                                 "leaves that init's files")
    if store.has(ts_key):
        raise signed_already
    if not store.put_if_absent(root_key, root_bytes):
        if not replace_unfinished:
            raise VersionConflict(f"{store.url}: another trust init is running, or one was stopped before it "
                                  f"finished ({root_key} without {ts_key}); once none is running, run trust init "
                                  "again with --replace-unfinished")
        try:
            left = store.get_tagged(root_key)
        except NotFound:
            left = None
        if store.has(ts_key):
            raise signed_already
        if left is None or not store.put_if_match(root_key, root_bytes, left.tag):
            raise VersionConflict(f"{store.url}: another trust init is running; try again once it is done")
    before = {}
    try:
        for key, data in rest:
            try:
                found = store.get_tagged(key)
            except NotFound:
                found = None
            if store.get(root_key) != root_bytes:
                raise taken_over
            before[key] = None if found is None else found.data
            if not store.put_if_match(key, data, None if found is None else found.tag):
                del before[key]  # not ours to put back
                raise taken_over
        if store.get(root_key) != root_bytes:
            raise taken_over
        if not store.put_if_match(ts_key, ts_bytes, None):
            raise signed_already
    except BaseException:
        _undo_init(store, root_key, root_bytes, before)
        raise
    return root


def _undo_init(store: WriteStore, root_key: str, root_bytes: bytes, before: dict[str, bytes | None]) -> None:
    """Put back what an init that failed before its commit wrote, unless another init
    has taken over (its root is not ours any more)."""
    try:
        if store.get(root_key) != root_bytes:
            return
        for key, data in before.items():
            if data is None:
                store.delete(key)
            else:
                store.put(key, data)
        store.delete(root_key)
    except Exception:  # the failure that brought us here is the one to report
        pass
