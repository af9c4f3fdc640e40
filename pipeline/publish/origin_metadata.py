"""What an origin's signed metadata is to a publish: this repository's (as new as ours, or
ahead of it: a publisher that read the repository later), another repository's (refused
before anything is written), or forged (replaced: players never trusted it). And the
commit: the timestamp, replaced only by compare-and-swap, never by an older one."""

from __future__ import annotations

import concurrent.futures as cf

from .. import layout
from ..errors import NotFound, VersionConflict
from ..storage import WriteStore
from .metadata import TIMESTAMP, read
from .upload import Uploader


def _foreign(origin: WriteStore, key: str, why: str) -> VersionConflict:
    return VersionConflict(f"{origin.url}: holds another repository's signed metadata ({key} {why}): publish "
                           f"there only from that repository, or use another origin")


def trusted_root(up: Uploader, keys: list[str]):
    """The newest root the origin holds that this repository's roots lead to. Every root
    both hold must be the same bytes, and every newer root on the origin must be signed
    onward from ours (a publisher ahead rotated keys): else the origin's metadata is
    another repository's, and ``VersionConflict`` names the origin."""
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Root

    ours = sorted((k for k in keys if layout.metadata_role_of(k)[1] == Root.type), key=layout.metadata_role_of)
    theirs = sorted((k for k in up.present(layout.METADATA_PREFIX) if layout.metadata_role_of(k)[1] == Root.type),
                    key=layout.metadata_role_of)
    for key in set(ours) & set(theirs):
        data = up.repo.get(key)
        if not up.holds(key, data) and up.retrying(lambda: up.origin.get(key)) != data:
            raise _foreign(up.origin, key, f"differs from {up.repo.url}'s")
    trusted = read(up.repo, ours[-1])
    for key in theirs:
        version = layout.metadata_role_of(key)[0]
        if version <= trusted.signed.version:
            continue
        new = read(up.origin, key, up.retrying(lambda: up.origin.get(key)))
        try:
            if new.signed.type != Root.type or version != trusted.signed.version + 1:
                raise UnsignedMetadataError(key)
            trusted.verify_delegate(Root.type, new)
            new.verify_delegate(Root.type, new)
        except UnsignedMetadataError:
            raise _foreign(up.origin, key, f"is not signed onward from {up.repo.url}'s roots") from None
        trusted = new
    return trusted


def _signed_timestamp(root, data: bytes):
    """The timestamp in ``data`` if ``root``'s timestamp key signed it, else None (forged,
    or another repository's: players never trusted it)."""
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, Timestamp
    from tuf.api.serialization import DeserializationError

    try:
        md = Metadata.from_bytes(data)
        root.verify_delegate(Timestamp.type, md)
    except (DeserializationError, UnsignedMetadataError, ValueError):
        return None
    return md if md.signed.type == Timestamp.type else None


def ahead(up: Uploader, root, timestamp: bytes) -> bool:
    """Whether the origin's timestamp is ours or newer, and signed with our timestamp key."""
    key = layout.metadata_key(TIMESTAMP)
    if up.holds(key, timestamp):  # ours, as the listing proves
        return True
    try:
        theirs = _signed_timestamp(root, up.retrying(lambda: up.origin.get(key)))
    except NotFound:
        return False
    return theirs is not None and theirs.signed.version >= read(up.repo, key, timestamp).signed.version


def replace_differing(up: Uploader, keys: list[str]) -> list[str]:
    """Metadata the origin holds under our names with other bytes (a forgery, or what a
    foreign timestamp named) is not there: ours replaces it, before our timestamp names it.
    Returns the keys replaced."""
    present = up.present(layout.METADATA_PREFIX)

    def differs(key: str) -> bool:
        ours = up.repo.get(key)
        if up.holds(key, ours):
            return False
        try:
            return up.retrying(lambda: up.origin.get(key)) != ours
        except NotFound:  # gone since the listing: copied like any missing object
            return False

    found = [k for k in keys if k in present and layout.metadata_role_of(k)[1] != "root"]
    with cf.ThreadPoolExecutor(max(1, min(up.jobs, len(found) or 1))) as pool:
        replaced = [k for k, d in zip(found, pool.map(differs, found)) if d]
    for key in replaced:
        data = up.repo.get(key)
        up.throttle(len(data))
        if up.swap(key, data):
            up.report.uploaded += 1
            up.report.uploaded_bytes += len(data)
    return replaced


def commit_timestamp(up: Uploader, timestamp: bytes, root) -> str:
    """Replace the origin's timestamp by the repository's unless the origin's is as new and
    signed with our timestamp key. One that does not verify (forged, or another
    repository's) is replaced whatever its version: players never trusted it."""
    key = layout.metadata_key(TIMESTAMP)
    if up.holds(key, timestamp):  # ours already, as the listing proves: nothing to read
        up.report.skipped += 1
        up.report.skipped_bytes += len(timestamp)
        return "unchanged"
    ours = read(up.repo, key, timestamp).signed.version
    while True:
        forged = False
        try:
            current = up.retrying(lambda: up.origin.get_tagged(key), cancellable=False)
            theirs = _signed_timestamp(root, current.data)
            if theirs is not None and theirs.signed.version >= ours:
                up.report.skipped += 1
                up.report.skipped_bytes += len(timestamp)
                return "unchanged" if current.data == timestamp else "newer-there"
            tag, forged = current.tag, theirs is None
        except NotFound:
            tag = None
        if up.rate is not None:  # the commit's bytes count against the cap like every other upload
            up.rate.acquire(len(timestamp), up.cancel)
            up.check()  # nothing written yet: a wait for the cap may still be cut short
        if up.retrying(lambda: up.origin.put_if_match(key, timestamp, tag), cancellable=False):
            up.report.uploaded += 1
            up.report.uploaded_bytes += len(timestamp)
            return "replaced" if forged else "updated"
