"""depot's library: stage functions over a small Store interface.

Stages take a store, names and an executor and return small frozen results; they never
print, parse arguments or start clusters (that is cli.py and dask_cluster/).
"""

from .chunk import ChunkResult, chunk
from .chunker import ChunkParams
from .diff import DiffResult, diff
from .errors import DepotError
from .fetch import Fetcher, open_origin
from .ingest import IngestResult, ingest
from .install import InstallResult, install
from .promote import promote
from .reassemble import reassemble
from .repair import RepairResult, repair
from .store import Store, open_store
from .update import UpdateResult, update
from .verify import VerifyReport, verify

__all__ = [
    "ChunkParams",
    "ChunkResult",
    "DepotError",
    "DiffResult",
    "Fetcher",
    "IngestResult",
    "InstallResult",
    "RepairResult",
    "Store",
    "UpdateResult",
    "VerifyReport",
    "chunk",
    "diff",
    "ingest",
    "install",
    "open_origin",
    "open_store",
    "promote",
    "reassemble",
    "repair",
    "update",
    "verify",
]
