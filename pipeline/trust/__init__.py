"""Trust, with TUF (python-tuf): the publisher's signed metadata (repository), its keys
(keys), and the client's checking of it from a trusted root (checking, anchors)."""

from .. import layout
from ..storage import ReadStore


def is_signed(store: ReadStore) -> bool:
    """Whether the repository has TUF metadata (``depot trust init`` was run). Here, not in
    ``repository``, so that asking costs an unsigned repository no python-tuf import."""
    return store.has(layout.metadata_key("timestamp"))
