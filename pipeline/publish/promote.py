"""promote: point a channel (stable, beta, ...) of a product at a chunked version."""

from __future__ import annotations

from .. import layout
from ..errors import NotFound, VersionConflict
from ..formats.channel import Channel
from ..storage import WriteStore


def promote(store: WriteStore, product: str, version: str, channel: str) -> Channel:
    """Move the pointer, once the version it names has its manifest. A compare-and-swap:
    of two release engineers promoting at once, one succeeds and the other is told the
    channel moved under it, rather than silently undoing the first."""
    key = layout.channel_key(product, channel)  # checks the names before anything is read
    if not store.has(layout.manifest_key(product, version)):
        raise NotFound(f"{product} {version} has no manifest in {store.url}: chunk it before promoting")
    try:
        tag = store.get_tagged(key).tag
    except NotFound:
        tag = None
    pointer = Channel(product, channel, version)
    if not store.put_if_match(key, pointer.to_bytes(), tag):
        raise VersionConflict(f"{product} {channel} was moved by someone else while promoting {version}: "
                              f"check `depot ls` and promote again")
    return pointer
