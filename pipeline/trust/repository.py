"""The publisher's side of TUF: signed metadata under ``metadata/`` in the repository, written
with python-tuf's Metadata API (see docs/trust.md).

Roles: ``root`` (offline, a threshold of keys), ``targets``, the online ``snapshot`` and
``timestamp``, and a role per product (trust.roles). Snapshots are consistent: every
metadata file but ``timestamp.json`` is named by its version and written once. Every signed
document is also stored under its SHA-256. So only ``timestamp.json`` ever changes under a
name a CDN caches.

Here: what runs on the whole repository (refresh, status, which keys stay offline), and
every name a command uses, from the modules that hold them. trust.init creates the
repository's trust. trust.transaction commits every change. trust.products keeps each
product's release keys and signs its documents.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tuf.api.metadata import Metadata, Root, Targets

from ..errors import NotFound
from ..formats import trust_settings
from ..formats.trust_settings import Lifetimes
from ..storage import WriteStore
from .init import init
from .keys import Keyring
from .products import check_can_sign, set_keys, sign_documents
from .roles import (ROOT, SNAPSHOT, TARGETS, TIMESTAMP, committed, current_root, delegated_roles, product_paths,
                    product_role, read_targets)
from .transaction import COMMIT_ATTEMPTS, Change, Commit, State, commit

__all__ = ["ROOT", "TARGETS", "SNAPSHOT", "TIMESTAMP", "COMMIT_ATTEMPTS", "Change", "Commit", "RoleStatus",
           "check_can_sign", "commit", "current_root", "init", "offline_keyids", "product_paths", "product_role",
           "refresh", "set_keys", "sign_documents", "status"]


def refresh(store: WriteStore, keyring: Keyring, lifetimes: Lifetimes | None = None) -> Commit:
    """What a cron job runs: a new snapshot and timestamp, and every targets role whose
    expiry is within half its lifetime re-signed when the keyring holds its keys."""
    lifetimes = lifetimes or trust_settings.load(store)

    def change(state: State) -> dict[str, Metadata[Targets]]:
        due: dict[str, Metadata[Targets]] = {}
        soon = datetime.datetime.now(datetime.timezone.utc)
        for meta_name in state.snapshot.signed.meta:
            name = meta_name.removesuffix(".json")
            md = state.role(name)
            assert md is not None, "the snapshot names it, so it has metadata"
            keyids = (state.root.roles[TARGETS].keyids if name == TARGETS
                      else delegated_roles(state.targets().signed)[name].keyids)
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
    signed: int  # valid signatures by the role's keys: below the threshold, players refuse it

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def status(store: WriteStore) -> list[RoleStatus]:
    """Every role as committed: version (0: no metadata signed yet), expiry, keys."""
    now = committed(store)
    root, snap, top = now.root, now.snapshot, now.targets

    def row(name: str, md: Metadata | None, delegator: Root | Targets) -> RoleStatus:
        role = delegator.get_delegated_role(name)
        signed = len(delegator.get_verification_result(name, md.signed_bytes, md.signatures).signed) if md else 0
        return RoleStatus(name, md.signed.version if md else 0, md.signed.expires.isoformat() if md else "",
                          sorted(role.keyids), role.threshold, signed)

    out = [row(name, md, root.signed)
           for name, md in ((ROOT, root), (TARGETS, top), (SNAPSHOT, snap), (TIMESTAMP, now.timestamp))]
    for name in sorted(delegated_roles(top.signed)):
        meta = snap.signed.meta.get(f"{name}.json")
        out.append(row(name, read_targets(store, name, meta.version) if meta else None, top.signed))
    return out


def offline_keyids(store: WriteStore) -> frozenset[str]:
    """The root keys that no online role uses (none in an unsigned repository): keys that
    stay offline, never taken from a keyring. A root key that also signs for targets,
    snapshot, timestamp or a product is not one: leaving it out would stop all signing."""
    try:
        now = committed(store)
    except NotFound:
        return frozenset()
    root, top = now.root.signed, now.targets.signed
    online = {k for name in (TARGETS, SNAPSHOT, TIMESTAMP) for k in root.roles[name].keyids}
    online.update(k for r in delegated_roles(top).values() for k in r.keyids)
    return frozenset(set(root.roles[ROOT].keyids) - online)
