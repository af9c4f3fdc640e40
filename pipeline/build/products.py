"""Per-product settings: the chunk sizes a product's versions are cut with, below which
size files are packed into shared chunks, and whether new versions are embargoed."""

from __future__ import annotations

from .. import layout
from ..core.chunk_params import ChunkParams
from ..formats import product as product_doc
from ..formats.product import ProductConfig
from ..storage import ReadStore, WriteStore, marker


def chunk_params(store: ReadStore, product: str) -> ChunkParams:
    """The product's chunk sizes, or the defaults (256 KiB / 1 MiB / 4 MiB)."""
    return product_doc.load(store, product).params


def settings(store: ReadStore, product: str) -> ProductConfig:
    """The product's settings, or the defaults."""
    return product_doc.load(store, product)


def configure(store: WriteStore, product: str, params: ChunkParams, pack_below: int | None = None,
              embargo: bool = False) -> ChunkParams:
    """Set the chunk sizes for the product's future versions, and below which size their
    files are packed (None: the minimum chunk size). Versions already chunked keep theirs
    (each manifest records its own); chunks are shared only between versions cut with the
    same sizes. ``embargo``: new versions are built embargoed (see build.embargo)."""
    layout.check_product(product)
    marker.mark(store)
    store.put(layout.product_config_key(product), ProductConfig(product, params, pack_below, embargo).to_bytes())
    return params
