"""A product's role: its release keys, and the documents they sign.

The ``targets`` role delegates ``products/<P>/...`` to the role ``product-<P>``, signed by
that product's release keys. Every signed document is also stored under its SHA-256
(``dir/<sha256>.<name>``): what clients download never changes under a name.
"""

from __future__ import annotations

from typing import Sequence

from securesystemslib.signer import Key
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, TargetFile, Targets

from .. import layout
from ..errors import InvalidArgument, NotFound
from ..formats import sealed
from ..formats.canonical import Document
from ..formats.channel import Channel
from ..formats.content_key import ContentKey
from ..formats.manifest import Manifest
from ..formats.plan import Plan
from ..formats.plan_index import PlanIndex
from ..formats.preload import Preload
from ..formats.release import Release
from ..formats.trust_settings import Lifetimes
from ..storage import WriteStore
from .keys import Keyring
from .roles import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, committed, delegated_roles, product_paths, product_role
from .transaction import Commit, State, commit


def check_can_sign(store: WriteStore, keyring: Keyring, product: str) -> None:
    """Refuse, before any work, a keyring that could not sign ``product``'s documents."""
    now = committed(store)
    root = now.root.signed
    role = product_role(product)
    delegated = delegated_roles(now.targets.signed)
    if role not in delegated:
        raise NotFound(f"{product} has no release key in {store.url}: run "
                       f"`depot trust add-key --product {product} --key FILE` first")
    for name, keyids in ((role, delegated[role].keyids), (SNAPSHOT, root.roles[SNAPSHOT].keyids),
                         (TIMESTAMP, root.roles[TIMESTAMP].keyids)):
        keyring.signers(keyids, name)


def set_keys(store: WriteStore, keyring: Keyring, product: str, add: Sequence[Key] = (), revoke: Sequence[str] = (),
             only: bool = False, lifetimes: Lifetimes | None = None) -> Commit | None:
    """Change the release keys of ``product`` (signed with the targets key): add keys,
    revoke key ids, or with ``only`` make ``add`` its only keys (a rotation). The product's
    metadata is re-signed at once with whichever of its keys the keyring holds, so that
    clients keep working across a rotation. A root key is refused: it stays offline."""
    role = product_role(product)

    def change(state: State) -> dict[str, Metadata[Targets]]:
        top = state.targets()
        if top.signed.delegations is None:
            top.signed.delegations = Delegations(keys={}, roles={})
        delegations = top.signed.delegations
        roles = delegated_roles(top.signed)
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
    """Sign every document of ``product`` whose bytes are not the ones its metadata names:
    manifests, plans, the plan index, channel pointers, releases, pre-load lists and
    released content keys. None if all are signed already. Each is validated first. Each
    is also stored under its SHA-256: that copy is what clients download."""
    role = product_role(product)

    def change(state: State) -> dict[str, Metadata[Targets]]:
        if role not in delegated_roles(state.targets().signed):
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
