"""The signed metadata the lookup service answers from, checked with python-tuf the way
players' clients check it (``trust.checking``): the root chain from the root given to
``depot serve --trust``, then timestamp, snapshot, targets and each product's role.

python-tuf keeps what it has verified in the service's own metadata directory, so a
refresh downloads only what changed: the root probe, the snapshot the new timestamp
names and the product roles whose version changed (those are read several at a time
first, then verified one by one). A product role verified before is used again while
its version and the targets role that delegates it are unchanged.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from .. import layout
from ..errors import DepotError
from ..trust.anchors import Anchor
from ..trust.checking import TrustedMetadata

ROLE_PREFIX = "product-"


@dataclass(frozen=True)
class _Role:
    version: int
    expires: float
    targets: dict[str, str]  # document key -> sha256, only paths the role is delegated


@dataclass
class Verified:
    """One verified reading of the origins' metadata."""

    timestamp_version: int
    expires: float  # the earliest expiry of the roles it was read from (seconds since the epoch)
    targets: dict[str, str] = field(default_factory=dict)  # document key -> sha256


def _seconds(when: datetime.datetime) -> float:
    return when.timestamp()


class Verifier:
    """Checks the origins' metadata from one trusted root, for one service process."""

    def __init__(self, root: bytes, read_many: Callable[[Callable, list], list]):
        self._read_many = read_many
        self._dir = Path(tempfile.mkdtemp(prefix="depot-serve-trust-"))
        (self._dir / "metadata").mkdir()
        (self._dir / "root.json").write_bytes(root)
        self.anchor = Anchor(self._dir)
        self._roles: dict[str, _Role] = {}
        self._targets_version = 0

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def _persisted(self, role: str) -> Metadata | None:
        """What python-tuf last accepted for ``role`` (it writes only what verified)."""
        try:
            return Metadata.from_bytes((self.anchor.metadata_dir / f"{role}.json").read_bytes())
        except FileNotFoundError:
            return None

    def read(self, stamp: bytes, where: str, get_key: Callable[[str], bytes]) -> Verified:
        """Verify the metadata of the mirror named ``where``, ``stamp`` being the timestamp
        it serves now and ``get_key`` reading the rest (that mirror first). Raises the trust
        errors a client would (METADATA_EXPIRED, METADATA_SIGNATURE_INVALID,
        METADATA_ROLLBACK, TARGET_MISMATCH, TRUST_MISSING), their message starting with
        ``where``."""
        timestamp_key = layout.metadata_key("timestamp")
        fetched: dict[str, bytes] = {}

        def try_get(key: str) -> bytes | None:
            """Read ahead: a failure is left for python-tuf to meet and name."""
            try:
                return get_key(key)
            except DepotError:
                return None

        def get(key: str, absent_if_any_says_so: bool = False) -> bytes:
            if key == timestamp_key:
                return stamp  # the bytes this refresh looked at, not a newer copy
            data = fetched.pop(key, None)
            return data if data is not None else get_key(key)

        trusted = TrustedMetadata(get, self.anchor, where)
        persisted = (self._persisted(role) for role in ("root", "timestamp", "snapshot", "targets"))
        root, ts, snap, top = (md.signed if md is not None else None for md in persisted)  # written by the refresh
        assert isinstance(root, Root) and isinstance(ts, Timestamp)
        assert isinstance(snap, Snapshot) and isinstance(top, Targets)
        if top.version != self._targets_version:  # keys or delegations may have changed
            self._roles, self._targets_version = {}, top.version
        delegated = dict(top.delegations.roles) if top.delegations and top.delegations.roles else {}
        wanted = {name.removesuffix(".json"): meta.version for name, meta in snap.meta.items()
                  if name.startswith(ROLE_PREFIX) and name.removesuffix(".json") in delegated}
        stale = [role for role, version in wanted.items()
                 if role not in self._roles or self._roles[role].version != version]
        keys = [layout.metadata_key(role, wanted[role]) for role in stale]
        fetched.update((k, data) for k, data in zip(keys, self._read_many(try_get, keys)) if data is not None)
        roles = {role: self._roles[role] for role in wanted if role not in stale}
        for role in stale:
            roles[role] = self._verify_role(trusted, role, wanted[role], delegated[role])
        self._roles = roles

        out = Verified(ts.version, min(_seconds(md.expires) for md in (root, ts, snap, top)))
        out.targets.update({path: info.hashes["sha256"] for path, info in top.targets.items()})
        for role in sorted(roles):
            out.expires = min(out.expires, roles[role].expires)
            for path, sha in roles[role].targets.items():
                out.targets.setdefault(path, sha)
        return out

    def _verify_role(self, trusted: TrustedMetadata, role: str, version: int, delegation) -> _Role:
        md = trusted.verified_role(role, version)
        targets = {path: info.hashes["sha256"] for path, info in md.targets.items()
                   if delegation.is_delegated_path(path)}
        return _Role(version, _seconds(md.expires), targets)
