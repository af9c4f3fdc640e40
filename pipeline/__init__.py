"""depot's library: stage functions over a small Store interface.

Stages take a store, names and an executor and return small frozen results; they never
print, parse arguments or start clusters (that is cli.py and dask_cluster/).
"""

from .chunk import ChunkResult, chunk
from .chunker import ChunkParams
from .errors import DepotError
from .ingest import IngestResult, ingest
from .reassemble import reassemble
from .store import Store, open_store

__all__ = [
    "ChunkParams",
    "ChunkResult",
    "DepotError",
    "IngestResult",
    "Store",
    "chunk",
    "ingest",
    "open_store",
    "reassemble",
]
