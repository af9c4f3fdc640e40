"""The publisher's side of TUF: signed metadata under ``metadata/`` in the repository, written
with python-tuf's Metadata API (see docs/trust.md).

Roles: ``root`` (offline, a threshold of keys), ``targets`` (delegates ``products/<P>/...``
to the role ``product-<P>``, signed by that product's release keys), and the online
``snapshot`` and ``timestamp``. Snapshots are consistent: every metadata file but
``timestamp.json`` is named by its version and written once, and every signed document is
also stored under its SHA-256 (``dir/<sha256>.<name>``), so only ``timestamp.json`` ever
changes under a name a CDN caches.

Every change is one transaction: role files and the snapshot are new versions, created
with ``put_if_absent`` (a taken version is skipped, never overwritten), and the commit is a
compare-and-swap of ``timestamp.json``. Two publishers signing at once both end up in the
metadata: the one whose commit loses starts again from the winner's snapshot.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Callable, Sequence

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (DelegatedRole, Delegations, Metadata, MetaFile, Root, Snapshot, TargetFile, Targets,
                              Timestamp)
from tuf.api.serialization.json import JSONSerializer

from .. import layout
from ..errors import InvalidArgument, NotFound, StoreUnavailable, VersionConflict
from ..formats.canonical import Document
from ..formats import sealed
from ..formats.channel import Channel
from ..formats.content_key import ContentKey
from ..formats.manifest import Manifest
from ..formats.plan import Plan
from ..formats.plan_index import PlanIndex
from ..formats.preload import Preload
from ..formats.release import Release
from ..formats import trust_settings
from ..formats.trust_settings import Lifetimes
from ..storage import WriteStore
from .keys import Keyring

ROOT, TARGETS, SNAPSHOT, TIMESTAMP = "root", "targets", "snapshot", "timestamp"
COMMIT_ATTEMPTS = 20
_SERIALIZER = JSONSerializer(compact=True)


def product_role(product: str) -> str:
    return f"product-{layout.check_product(product)}"


def _expires(lifetime: datetime.timedelta) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + lifetime


def _get(store: WriteStore, role: str, version: int | None = None) -> bytes:
    key = layout.metadata_key(role, version)
    try:
        return store.get(key)
    except NotFound:
        if role == TIMESTAMP:
            raise NotFound(f"{store.url} is not signed (no {key}): run `depot trust init` first") from None
        raise


def _read_root(store: WriteStore, version: int) -> Metadata[Root]:
    return Metadata[Root].from_bytes(_get(store, ROOT, version))


def _read_timestamp(store: WriteStore) -> Metadata[Timestamp]:
    return Metadata[Timestamp].from_bytes(_get(store, TIMESTAMP))


def _read_snapshot(store: WriteStore, version: int) -> Metadata[Snapshot]:
    return Metadata[Snapshot].from_bytes(_get(store, SNAPSHOT, version))


def _read_targets(store: WriteStore, role: str, version: int) -> Metadata[Targets]:
    """``targets`` or a product's delegated role."""
    return Metadata[Targets].from_bytes(_get(store, role, version))


def _delegated_roles(top: Targets) -> dict[str, DelegatedRole]:
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
    return _read_root(store, max(versions))


# -- creating the repository's trust ---------------------------------------------------------


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
    root = Metadata(Root(expires=_expires(lifetimes.of(ROOT)), consistent_snapshot=True))
    for s in root_signers:
        root.signed.add_key(s.public_key, ROOT)
    for role, s in ((TARGETS, targets), (SNAPSHOT, snapshot), (TIMESTAMP, timestamp)):
        root.signed.add_key(s.public_key, role)
    root.signed.roles[ROOT].threshold = threshold
    for s in root_signers:
        root.sign(s, append=True)
    top = Metadata(Targets(expires=_expires(lifetimes.of(TARGETS))))
    top.sign(targets)
    snap = Metadata(Snapshot(expires=_expires(lifetimes.of(SNAPSHOT))))
    snap.signed.meta[f"{TARGETS}.json"] = MetaFile(version=1)
    snap.sign(snapshot)
    ts = Metadata(Timestamp(expires=_expires(lifetimes.of(TIMESTAMP)), snapshot_meta=MetaFile(version=1)))
    ts.sign(timestamp)
    root_key, ts_key = layout.metadata_key(ROOT, 1), layout.metadata_key(TIMESTAMP)
    root_bytes, ts_bytes = root.to_bytes(_SERIALIZER), ts.to_bytes(_SERIALIZER)
    rest = [(layout.TRUST_SETTINGS_KEY, lifetimes.to_bytes()),
            (layout.metadata_key(TARGETS, 1), top.to_bytes(_SERIALIZER)),
            (layout.metadata_key(SNAPSHOT, 1), snap.to_bytes(_SERIALIZER))]
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


# -- the transaction every change goes through ----------------------------------------------


@dataclass
class _State:
    """The committed metadata a change starts from."""

    store: WriteStore
    root: Root
    snapshot: Metadata[Snapshot]
    _roles: dict[str, Metadata[Targets]] = field(default_factory=dict)

    def role(self, name: str) -> Metadata[Targets] | None:
        """A targets role as committed, or None if it has no metadata yet."""
        meta = self.snapshot.signed.meta.get(f"{name}.json")
        if meta is None:
            return None
        if name not in self._roles:
            self._roles[name] = _read_targets(self.store, name, meta.version)
        return copy.deepcopy(self._roles[name])

    def targets(self) -> Metadata[Targets]:
        top = self.role(TARGETS)
        assert top is not None, "every snapshot names targets.json (init writes it)"
        return top


@dataclass(frozen=True)
class Commit:
    snapshot_version: int
    timestamp_version: int
    roles: dict[str, int]  # role -> the version this commit wrote

    def to_dict(self) -> dict:
        return dict(self.__dict__)


Change = Callable[[_State], dict[str, Metadata[Targets]]]


def commit(store: WriteStore, keyring: Keyring, change: Change, lifetimes: Lifetimes | None = None,
           always: bool = False) -> Commit | None:
    """Apply ``change`` (committed state -> targets roles to write) as one new snapshot and
    timestamp; None if it changes nothing (unless ``always``: then a new snapshot and
    timestamp are signed anyway, which is how their expiry is pushed back). Lifetimes
    default to the repository's trust settings."""
    lifetimes = lifetimes or trust_settings.load(store)
    root = current_root(store).signed
    for _ in range(COMMIT_ATTEMPTS):
        ts_key = layout.metadata_key(TIMESTAMP)
        tagged = store.get_tagged(ts_key)
        ts = Metadata[Timestamp].from_bytes(tagged.data)
        state = _State(store, root, _read_snapshot(store, ts.signed.snapshot_meta.version))
        roles = change(state)
        if not roles and not always:
            return None
        top = (roles.get(TARGETS) or state.targets()).signed
        snap = copy.deepcopy(state.snapshot)
        written: dict[str, int] = {}
        for name, md in roles.items():
            keyids = root.roles[TARGETS].keyids if name == TARGETS else _delegated_roles(top)[name].keyids
            md.signed.expires = _expires(lifetimes.of(name))
            committed = snap.signed.meta.get(f"{name}.json")
            written[name] = _create(store, name, md, (committed.version if committed else 0) + 1,
                                    keyring.signers(keyids, name))
            snap.signed.meta[f"{name}.json"] = MetaFile(version=written[name])
        snap.signed.expires = _expires(lifetimes.of(SNAPSHOT))
        snap_version = _create(store, SNAPSHOT, snap, snap.signed.version + 1,
                               keyring.signers(root.roles[SNAPSHOT].keyids, SNAPSHOT))
        ts.signed.snapshot_meta = MetaFile(version=snap_version)
        ts.signed.version += 1
        ts.signed.expires = _expires(lifetimes.of(TIMESTAMP))
        _sign(ts, keyring.signers(root.roles[TIMESTAMP].keyids, TIMESTAMP))
        if store.put_if_match(ts_key, ts.to_bytes(_SERIALIZER), tagged.tag):
            return Commit(snap_version, ts.signed.version, written)
    raise StoreUnavailable(f"{store.url}: the metadata kept changing under {COMMIT_ATTEMPTS} attempts to sign; "
                           "try again")


def _sign(md: Metadata, signers: Sequence[Signer]) -> None:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)


def _create(store: WriteStore, role: str, md: Metadata, version: int, signers: Sequence[Signer]) -> int:
    """Write ``md`` as the first free version from ``version`` on; the version written.
    A taken version was left by a publisher whose commit lost: never reused."""
    for v in range(version, version + 1000):
        md.signed.version = v
        _sign(md, signers)
        if store.put_if_absent(layout.metadata_key(role, v), md.to_bytes(_SERIALIZER)):
            return v
    raise StoreUnavailable(f"{store.url}: no free version of {role} metadata after {version + 999}")


# -- products: their release keys and their signed documents -------------------------------


def check_can_sign(store: WriteStore, keyring: Keyring, product: str) -> None:
    """Refuse, before any work, a keyring that could not sign ``product``'s documents."""
    root = current_root(store).signed
    ts = _read_timestamp(store)
    snap = _read_snapshot(store, ts.signed.snapshot_meta.version)
    top = _read_targets(store, TARGETS, snap.signed.meta[f"{TARGETS}.json"].version).signed
    role = product_role(product)
    delegated = _delegated_roles(top)
    if role not in delegated:
        raise NotFound(f"{product} has no release key in {store.url}: run "
                       f"`depot trust add-key --product {product} --key FILE` first")
    for name, keyids in ((role, delegated[role].keyids), (SNAPSHOT, root.roles[SNAPSHOT].keyids),
                         (TIMESTAMP, root.roles[TIMESTAMP].keyids)):
        keyring.signers(keyids, name)


def product_paths(product: str) -> list[str]:
    """The target paths a product's role may sign: its documents, and nothing else."""
    return [f"products/{product}/*/*", f"products/{product}/*/*/*"]


def set_keys(store: WriteStore, keyring: Keyring, product: str, add: Sequence[Key] = (), revoke: Sequence[str] = (),
             only: bool = False, lifetimes: Lifetimes | None = None) -> Commit | None:
    """Change the release keys of ``product`` (signed with the targets key): add keys,
    revoke key ids, or with ``only`` make ``add`` its only keys (a rotation). The product's
    metadata is re-signed at once with whichever of its keys the keyring holds, so that
    clients keep working across a rotation. A root key is refused: it stays offline."""
    role = product_role(product)

    def change(state: _State) -> dict[str, Metadata[Targets]]:
        top = state.targets()
        if top.signed.delegations is None:
            top.signed.delegations = Delegations(keys={}, roles={})
        delegations = top.signed.delegations
        roles = _delegated_roles(top.signed)
        delegated = roles.get(role)
        keyids = [] if delegated is None or only else list(delegated.keyids)
        unknown = [k for k in revoke if k not in keyids]
        if unknown:
            raise NotFound(f"{product} has no release key {unknown[0]}")
        keyids = [k for k in keyids if k not in revoke] + [k.keyid for k in add if k.keyid not in keyids]
        if delegated is not None and keyids == list(delegated.keyids):
            return {}
        for key in add:
            if key.keyid in state.root.roles[ROOT].keyids:
                raise InvalidArgument(f"key {key.keyid} is a root key: the root key stays offline, so it cannot "
                                      f"be a release key of {product}")
        for key in add:
            delegations.keys[key.keyid] = key
        roles[role] = DelegatedRole(role, keyids, 1, True, product_paths(product))
        used = {k for r in roles.values() for k in r.keyids}
        for keyid in list(delegations.keys):
            if keyid not in used:
                del delegations.keys[keyid]
        changed = {TARGETS: top}
        current = state.role(role)
        if current is not None and keyring.has_any(keyids):
            changed[role] = current  # re-signed with a key the role now has
        return changed

    return commit(store, keyring, change, lifetimes)


_DOCUMENTS: dict[str, type[Document]] = {"manifest": Manifest, "plan": Plan, "index": PlanIndex, "channel": Channel,
                                          "release": Release, "key": ContentKey, "preload": Preload}
_VERSION_DOCUMENTS = {"manifest.json": "manifest", "release.json": "release", "preload.json": "preload"}


def _document_kind(product: str, key: str) -> str | None:
    if layout.is_hashed_copy(key):
        return None
    found = layout.version_document_of(key)
    if found:
        return _VERSION_DOCUMENTS.get(found[2])
    if layout.plan_pair_of(key):
        return "plan"
    if key == layout.plan_index_key(product):
        return "index"
    if layout.content_key_of(key):
        return "key"
    return "channel" if layout.channel_of(key) else None


def _check_document(kind: str, key: str, data: bytes, where: str) -> None:
    """Only valid documents are signed. A sealed one (an embargoed version's) is checked as
    far as it can be without its key: its header."""
    if kind in ("manifest", "plan") and sealed.is_sealed(data):
        sealed.key_id(data, key)
    else:
        _DOCUMENTS[kind].from_bytes(data, where)


def sign_documents(store: WriteStore, keyring: Keyring, product: str,
                   lifetimes: Lifetimes | None = None) -> Commit | None:
    """Sign every document of ``product`` (manifests, plans, the plan index, channel
    pointers, releases and released content keys) whose bytes are not the ones its metadata names; None if all are. Each is
    validated first and also stored under its SHA-256, which is what clients download."""
    role = product_role(product)

    def change(state: _State) -> dict[str, Metadata[Targets]]:
        if role not in _delegated_roles(state.targets().signed):
            raise NotFound(f"{product} has no release key: run `depot trust add-key --product {product} --key FILE`")
        md = state.role(role) or Metadata(Targets())
        signed = md.signed.targets
        keys = list(store.list(f"{layout.PRODUCT_PREFIX}{product}/"))
        gone = set(signed) - set(keys)  # retired: no longer offered
        for key in gone:
            del signed[key]
        changed = bool(gone)
        for key in keys:
            kind = _document_kind(product, key)
            if kind is None:
                continue
            data = store.get(key)
            info = TargetFile.from_data(key, data, ["sha256"])
            if key in signed and signed[key] == info:
                continue
            _check_document(kind, key, data, store.url_of(key))
            store.put_if_absent(layout.hashed_target_key(key, info.hashes["sha256"]), data)
            signed[key] = info
            changed = True
        return {role: md} if changed else {}

    return commit(store, keyring, change, lifetimes)


def refresh(store: WriteStore, keyring: Keyring, lifetimes: Lifetimes | None = None) -> Commit:
    """What a cron job runs: a new snapshot and timestamp, and every targets role whose
    expiry is within half its lifetime re-signed when the keyring holds its keys."""
    lifetimes = lifetimes or trust_settings.load(store)

    def change(state: _State) -> dict[str, Metadata[Targets]]:
        due: dict[str, Metadata[Targets]] = {}
        soon = datetime.datetime.now(datetime.timezone.utc)
        for meta_name in state.snapshot.signed.meta:
            name = meta_name.removesuffix(".json")
            md = state.role(name)
            assert md is not None, "the snapshot names it, so it has metadata"
            keyids = (state.root.roles[TARGETS].keyids if name == TARGETS
                      else _delegated_roles(state.targets().signed)[name].keyids)
            if md.signed.expires < soon + lifetimes.of(name) / 2 and keyring.has_any(keyids):
                due[name] = md
        return due

    done = commit(store, keyring, change, lifetimes, always=True)
    assert done is not None, "always: a new snapshot and timestamp are signed even with no role due"
    return done


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: str
    keyids: list[str]
    threshold: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def status(store: WriteStore) -> list[RoleStatus]:
    """Every role as committed: version (0: no metadata signed yet), expiry, keys."""
    root = current_root(store)
    ts = _read_timestamp(store)
    snap = _read_snapshot(store, ts.signed.snapshot_meta.version)
    top = _read_targets(store, TARGETS, snap.signed.meta[f"{TARGETS}.json"].version)

    def row(name: str, md: Metadata | None, keyids, threshold: int) -> RoleStatus:
        return RoleStatus(name, md.signed.version if md else 0, md.signed.expires.isoformat() if md else "",
                          sorted(keyids), threshold)

    out = [row(name, md, root.signed.roles[name].keyids, root.signed.roles[name].threshold)
           for name, md in ((ROOT, root), (TARGETS, top), (SNAPSHOT, snap), (TIMESTAMP, ts))]
    for name, r in sorted(_delegated_roles(top.signed).items()):
        meta = snap.signed.meta.get(f"{name}.json")
        out.append(row(name, _read_targets(store, name, meta.version) if meta else None, r.keyids, r.threshold))
    return out


def offline_keyids(store: WriteStore) -> frozenset[str]:
    """The root keys that no online role uses (none in an unsigned repository): keys that
    stay offline, never taken from a keyring. A root key that also signs for targets,
    snapshot, timestamp or a product is not one: leaving it out would stop all signing."""
    try:
        root = current_root(store).signed
        ts = _read_timestamp(store)
        snap = _read_snapshot(store, ts.signed.snapshot_meta.version)
        top = _read_targets(store, TARGETS, snap.signed.meta[f"{TARGETS}.json"].version).signed
    except NotFound:
        return frozenset()
    online = {k for name in (TARGETS, SNAPSHOT, TIMESTAMP) for k in root.roles[name].keyids}
    online.update(k for r in _delegated_roles(top).values() for k in r.keyids)
    return frozenset(set(root.roles[ROOT].keyids) - online)
