"""promote: point a channel (stable, beta, ...) of a product at a chunked version."""

from __future__ import annotations

from . import layout, manifest, schemas
from .errors import NotFound
from .store import Store

SCHEMA = "channel-1"


def promote(store: Store, product: str, version: str, channel: str) -> dict:
    if not manifest.exists(store, product, version):
        raise NotFound(f"{product} {version} has no manifest in {store.url}: chunk it before promoting")
    doc = {"format": "depot.channel/1", "product": product, "channel": channel, "version": version}
    store.put(layout.channel_key(product, channel), schemas.dumps(doc, SCHEMA, f"channel {channel}"), overwrite=True)
    return doc
