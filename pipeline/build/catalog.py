"""What a repository holds: its products, and each product's versions with their state
(and, for an embargoed version, where its release stands)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import layout
from ..core.versions import sort_versions
from ..errors import NotFound
from ..formats import release as release_doc
from ..storage import WriteStore


@dataclass(frozen=True)
class VersionState:
    version: str
    state: str  # "chunked" (it has a manifest) or "ingested" (only an inventory)
    embargo: str = ""  # "", or "embargoed", "release at <time>", "released at <time>"

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v or k != "embargo"}


def _embargo(store: WriteStore, product: str, version: str, names: set[str]) -> str:
    """Where an embargoed version's release stands, from its documents ("" if it is not)."""
    if "preload.json" not in names:
        return ""
    if "release.json" not in names:
        return "embargoed"
    r = release_doc.load(store, product, version)
    return f"{'released' if release_doc.is_released(store, product, r.key_id) else 'release'} at {r.at}"


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
    return [VersionState(v, "chunked" if "manifest.json" in documents[v] else "ingested",
                         _embargo(store, product, v, documents[v])) for v in sort_versions(documents)]


def chunked_versions(store: WriteStore, product: str) -> list[str]:
    """The versions of ``product`` that have a manifest, oldest first."""
    found = layout.version_document_of
    return sort_versions({d[1] for d in map(found, store.list(layout.versions_prefix(product)))
                          if d and d[2] == "manifest.json"})
