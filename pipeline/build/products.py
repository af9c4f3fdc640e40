"""Per-product settings: the chunk sizes a product's versions are cut with."""

from __future__ import annotations

from .. import layout
from ..core.chunk_params import ChunkParams
from ..formats import product as product_doc
from ..formats.product import ProductConfig
from ..storage import ReadStore, WriteStore, marker


def chunk_params(store: ReadStore, product: str) -> ChunkParams:
    """The product's chunk sizes, or the defaults (256 KiB / 1 MiB / 4 MiB)."""
    return product_doc.load(store, product).params


def configure(store: WriteStore, product: str, params: ChunkParams) -> ChunkParams:
    """Set the chunk sizes for the product's future versions. Versions already chunked
    keep theirs (each manifest records its own); chunks are shared only between versions
    cut with the same sizes."""
    layout.check_product(product)
    marker.mark(store)
    store.put(layout.product_config_key(product), ProductConfig(product, params).to_bytes())
    return params
