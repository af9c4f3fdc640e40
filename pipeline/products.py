"""Per-product settings: the chunk sizes a product's versions are cut with."""

from __future__ import annotations

import json

from . import layout
from .chunker import ChunkParams
from .errors import NotFound
from .store import Store


def chunk_params(store: Store, product: str) -> ChunkParams:
    """The product's chunk sizes, or the defaults (256 KiB / 1 MiB / 4 MiB)."""
    try:
        doc = json.loads(store.get(layout.product_config_key(product)))
    except NotFound:
        return ChunkParams()
    return ChunkParams(**doc["chunking"])


def configure(store: Store, product: str, params: ChunkParams) -> ChunkParams:
    """Set the chunk sizes for the product's future versions. Versions already chunked
    keep theirs (each manifest records its own); chunks are shared only between versions
    cut with the same sizes."""
    doc = {"chunking": params.to_dict()}
    if params.segment_size:
        doc["chunking"]["segment_size"] = params.segment_size
    data = json.dumps(doc, sort_keys=True).encode() + b"\n"
    store.put(layout.product_config_key(product), data, overwrite=True)
    return params
