"""What a repository holds: its products, and each product's versions with their state."""

from __future__ import annotations

from dataclasses import dataclass

from .. import layout
from ..core.versions import sort_versions
from ..errors import NotFound
from ..storage import WriteStore


@dataclass(frozen=True)
class VersionState:
    version: str
    state: str  # "chunked" (it has a manifest) or "ingested" (only an inventory)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def products(store: WriteStore) -> list[str]:
    return sorted({p for p in map(layout.product_of, store.list(layout.PRODUCT_PREFIX)) if p})


def versions(store: WriteStore, product: str) -> list[VersionState]:
    """Every version of ``product``, oldest first; NotFound for a product with none."""
    documents: dict[str, set[str]] = {}
    for key in store.list(layout.versions_prefix(product)):
        found = layout.version_document_of(key)
        if found:
            documents.setdefault(found[1], set()).add(found[2])
    if not documents:
        raise NotFound(f"{store.url} has no versions of {product!r}")
    return [VersionState(v, "chunked" if "manifest.json" in documents[v] else "ingested")
            for v in sort_versions(documents)]


def chunked_versions(store: WriteStore, product: str) -> list[str]:
    """The versions of ``product`` that have a manifest, oldest first."""
    found = layout.version_document_of
    return sort_versions({d[1] for d in map(found, store.list(layout.versions_prefix(product)))
                          if d and d[2] == "manifest.json"})
