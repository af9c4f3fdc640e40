"""A product's settings (``product-1``).

They say the chunk sizes its next versions are cut with, below which size files are
packed, and whether its new versions are embargoed: built sealed, for pre-load before
release. Versions already chunked keep their sizes: each manifest records its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from ..core.chunk_params import ChunkParams
from ..errors import NotFound
from . import canonical
from .canonical import Document, Reader

SCHEMA = "product-1"
FORMAT = "depot.product/1"


@dataclass(frozen=True)
class ProductConfig(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    params: ChunkParams = ChunkParams()
    pack_below: int | None = None  # None: the minimum chunk size
    embargo: bool = False  # new versions are built embargoed, as with ``depot run --embargo``

    @property
    def packing_below(self) -> int:
        """Files of 1 to this many bytes minus one are packed into shared chunks; 0: none."""
        return self.params.min_size if self.pack_below is None else self.pack_below

    def describe(self) -> str:
        return f"settings of {self.product}"

    def to_dict(self) -> dict:
        chunking = self.params.to_dict()
        if self.params.segment_size:
            chunking["segment_size"] = self.params.segment_size
        if self.pack_below is not None:
            chunking["pack_below"] = self.pack_below
        d: dict = {"format": FORMAT, "product": self.product, "chunking": chunking}
        if self.embargo:
            d["embargo"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ProductConfig":
        chunking = dict(d["chunking"])
        pack_below = chunking.pop("pack_below", None)
        return cls(d["product"], ChunkParams(**chunking), pack_below, d.get("embargo", False))


def load(reader: Reader, product: str) -> ProductConfig:
    """The product's settings, or the defaults (chunks of 256 KiB / 1 MiB / 4 MiB)."""
    try:
        return canonical.read(reader, layout.product_config_key(product), ProductConfig.from_bytes, "")
    except NotFound:
        return ProductConfig(product)
