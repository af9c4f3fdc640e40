"""The transaction every change to the signed metadata goes through.

A change reads the committed state and gives the targets roles it changes. Those roles
and a new snapshot are new versions, created with ``put_if_absent``: a taken version is
skipped, never overwritten. The commit is a compare-and-swap of ``timestamp.json``. Of
two publishers signing at once, the one whose commit loses starts again from the winner's
snapshot, so both changes end up in the metadata.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from .. import layout
from ..errors import StoreUnavailable
from ..formats import trust_settings
from ..formats.trust_settings import Lifetimes
from ..storage import WriteStore
from .keys import Keyring
from .roles import (SERIALIZER, SNAPSHOT, TARGETS, TIMESTAMP, current_root, delegated_roles, expiry, read_snapshot,
                    read_targets)

COMMIT_ATTEMPTS = 20


@dataclass
class State:
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
            self._roles[name] = read_targets(self.store, name, meta.version)
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


Change = Callable[[State], dict[str, Metadata[Targets]]]


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
        state = State(store, root, read_snapshot(store, ts.signed.snapshot_meta.version))
        roles = change(state)
        if not roles and not always:
            return None
        top = (roles.get(TARGETS) or state.targets()).signed
        snap = copy.deepcopy(state.snapshot)
        written: dict[str, int] = {}
        for name, md in roles.items():
            keyids = root.roles[TARGETS].keyids if name == TARGETS else delegated_roles(top)[name].keyids
            md.signed.expires = expiry(lifetimes.of(name))
            committed = snap.signed.meta.get(f"{name}.json")
            written[name] = _create(store, name, md, (committed.version if committed else 0) + 1,
                                    keyring.signers(keyids, name))
            snap.signed.meta[f"{name}.json"] = MetaFile(version=written[name])
        snap.signed.expires = expiry(lifetimes.of(SNAPSHOT))
        snap_version = _create(store, SNAPSHOT, snap, snap.signed.version + 1,
                               keyring.signers(root.roles[SNAPSHOT].keyids, SNAPSHOT))
        ts.signed.snapshot_meta = MetaFile(version=snap_version)
        ts.signed.version += 1
        ts.signed.expires = expiry(lifetimes.of(TIMESTAMP))
        _sign(ts, keyring.signers(root.roles[TIMESTAMP].keyids, TIMESTAMP))
        if store.put_if_match(ts_key, ts.to_bytes(SERIALIZER), tagged.tag):
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
        if store.put_if_absent(layout.metadata_key(role, v), md.to_bytes(SERIALIZER)):
            return v
    raise StoreUnavailable(f"{store.url}: no free version of {role} metadata after {version + 999}")
