"""Trust, with TUF (python-tuf).

The publisher signs its metadata with its keys: repository, keys. A command signs the
documents it writes through signing. The client checks that metadata from a trusted
root: checking, anchors.

May import: errors, layout, core, formats, storage.
"""

from .. import layout
from ..storage import ReadStore


def is_signed(store: ReadStore) -> bool:
    """Whether the repository has TUF metadata (``depot trust init`` was run). Here, not in
    ``repository``, so that asking costs an unsigned repository no python-tuf import."""
    return store.has(layout.metadata_key("timestamp"))
