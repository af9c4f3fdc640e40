"""verify_metadata: the signed metadata a publish is about to push, checked as a player
checks it, before anything is pushed.

A player starts from the repository's first root and walks the chain of roots; then it
checks the timestamp, the snapshot, the targets role and each product's role, with
python-tuf (``trust.checking``). Metadata a player would refuse would break every origin
it reached. So a publish checks the same way, reading only the metadata it will push.
Imported only for a signed repository: it loads python-tuf's client.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tuf.api.metadata import Metadata, Targets

from .. import layout
from ..errors import NotFound, TargetMismatch, TrustError
from ..storage import ReadStore
from ..trust.anchors import Anchor
from ..trust.checking import TrustedMetadata
from .metadata import TIMESTAMP


def verify_metadata(repo: ReadStore, keys: list[str], timestamp: bytes) -> None:
    """Check ``keys`` (every root, the snapshot and the roles it names) and the
    ``timestamp`` bytes that commit to them, from the repository's first root. Raises
    what a player would get (METADATA_SIGNATURE_INVALID, METADATA_EXPIRED, ...), naming
    the repository and the role."""
    pushed = set(keys)
    timestamp_key = layout.metadata_key(TIMESTAMP)

    def get(key: str, absent_if_any_says_so: bool = False) -> bytes:
        if key == timestamp_key:
            return timestamp  # the bytes this publish commits with, not a newer copy
        if key not in pushed:  # a player would not find it on the origin either
            raise NotFound(f"{repo.url_of(key)} not found")
        return repo.get(key)

    first_root = min((k for k in keys if layout.metadata_role_of(k)[1] == "root"), key=layout.metadata_role_of)
    with tempfile.TemporaryDirectory(prefix="depot-publish-trust-") as tmp:
        anchor = Anchor(Path(tmp))
        anchor.metadata_dir.mkdir()
        (anchor.path / "root.json").write_bytes(repo.get(first_root))
        try:
            trusted = TrustedMetadata(get, anchor, repo.url)
            top = Metadata.from_bytes((anchor.metadata_dir / "targets.json").read_bytes()).signed
            assert isinstance(top, Targets)
            delegated = top.delegations.roles if top.delegations and top.delegations.roles else {}
            for key in keys:
                version, role = layout.metadata_role_of(key)
                if role in delegated:
                    trusted.verified_role(role, version)
        except (TrustError, TargetMismatch) as exc:
            raise type(exc)(f"{exc}: not published (players would refuse it)") from None

