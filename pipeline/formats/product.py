"""A product's settings (``product-1``): the chunk sizes its versions are cut with from
now on. Versions already chunked keep theirs: each manifest records its own."""

from __future__ import annotations

from dataclasses import dataclass

from .. import layout
from ..core.cdc import ChunkParams
from ..errors import NotFound
from . import canonical
from .canonical import Reader

SCHEMA = "product-1"
FORMAT = "depot.product/1"


@dataclass(frozen=True)
class ProductConfig:
    product: str
    params: ChunkParams = ChunkParams()

    def to_dict(self) -> dict:
        chunking = self.params.to_dict()
        if self.params.segment_size:
            chunking["segment_size"] = self.params.segment_size
        return {"format": FORMAT, "product": self.product, "chunking": chunking}

    @classmethod
    def from_dict(cls, d: dict) -> "ProductConfig":
        return cls(d["product"], ChunkParams(**d["chunking"]))


def to_bytes(c: ProductConfig) -> bytes:
    return canonical.dumps(c.to_dict(), SCHEMA, f"settings of {c.product}")


def from_bytes(data: bytes, where: str) -> ProductConfig:
    return ProductConfig.from_dict(canonical.loads(data, SCHEMA, where))


def load(reader: Reader, product: str) -> ProductConfig:
    """The product's settings, or the defaults (chunks of 256 KiB / 1 MiB / 4 MiB)."""
    try:
        return canonical.read(reader, layout.product_config_key(product), from_bytes, "")
    except NotFound:
        return ProductConfig(product)
