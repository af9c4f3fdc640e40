"""promote: point a channel (stable, beta, ...) of a product at a chunked version."""

from __future__ import annotations

from .. import layout
from ..errors import NotFound
from ..formats import channel as channel_doc
from ..formats.channel import Channel
from ..storage import WriteStore


def promote(store: WriteStore, product: str, version: str, channel: str) -> Channel:
    """Write the pointer last, and only once the version it names has its manifest."""
    key = layout.channel_key(product, channel)  # checks the names before anything is read
    if not store.has(layout.manifest_key(product, version)):
        raise NotFound(f"{product} {version} has no manifest in {store.url}: chunk it before promoting")
    pointer = Channel(product, channel, version)
    store.put(key, channel_doc.to_bytes(pointer))
    return pointer
