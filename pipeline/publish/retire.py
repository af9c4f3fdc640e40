"""rm: retire a version from the repository, or drop one that was never finished.

A chunked version is refused while a channel delivers it. Its manifest, inventory, the
plans to and from it (and in a signed repository their copies under their hashes) go;
chunks and patches stay for gc, which removes those no retained version needs. A version
that was ingested but never chunked loses its inventory and staged pack.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import layout
from ..errors import NotFound, VersionConflict
from ..storage import WriteStore
from .channels import channels


@dataclass(frozen=True)
class RetireResult:
    product: str
    version: str
    state: str  # what it was: "chunked" or "ingested"
    removed: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def retire(store: WriteStore, product: str, version: str) -> RetireResult:
    version_dir = layout.manifest_key(product, version).rsplit("/", 1)[0] + "/"
    documents = list(store.list(version_dir))
    if not documents:
        raise NotFound(f"{store.url} has no version {version} of {product}")
    chunked = layout.manifest_key(product, version) in documents
    if chunked:
        live = [c.channel for c in channels(store, product) if c.version == version]
        if live:
            raise VersionConflict(f"{product} {version} is what channel {live[0]} delivers: promote or roll back "
                                  f"{live[0]} to another version first")
    plans = [k for k in store.list(layout.plans_prefix(product))
             if version in (layout.plan_pair_of(layout.plain_key_of(k)) or ())]
    doomed = plans + [layout.staged_pack_key(product, version)] + sorted(documents, key=_manifest_last)
    for key in doomed:  # the manifest, the version's commit point, goes last
        store.delete(key)
    return RetireResult(product, version, "chunked" if chunked else "ingested", [k for k in doomed if k in
                                                                                  set(documents) | set(plans)])


def _manifest_last(key: str) -> bool:
    return key.endswith("/manifest.json")
