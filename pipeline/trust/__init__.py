"""Trust, with TUF (python-tuf).

The publisher signs its metadata. roles names the roles and reads what was committed. init
creates the repository's trust. transaction commits every change. products keeps each
product's release keys and signs its documents. repository gathers these for commands.
keys holds the signing keys; content_keys the keys of embargoed versions. signing is
what a command asks for to sign what it writes. The client checks the metadata from a
trusted root: checking, anchors.

May import: errors, layout, core, formats, storage.
"""

from .. import layout
from ..storage import ReadStore


def is_signed(store: ReadStore) -> bool:
    """Whether the repository has TUF metadata (``depot trust init`` was run). Here, not in
    ``repository``, so that asking costs an unsigned repository no python-tuf import."""
    return store.has(layout.metadata_key("timestamp"))
