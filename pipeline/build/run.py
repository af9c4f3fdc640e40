"""run: ingest then chunk, reading a directory's (or a tar's) files once.

Ingest alone hashes every file for the inventory, and chunk reads every file again to cut
it and checks that its SHA-256 is still the inventory's. When both run in one go on a
build read in place, one pass does both: the files are cut, stored and hashed, then the
inventory is written with those hashes, then the manifest. The inventory still comes
before the manifest, so a version is ``ingested`` until its manifest exists, as with the
two steps. An archive (whose bytes ingest stages in one pass anyway), or a version
ingested before, takes the two steps.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import time
from typing import Callable

from ..core.progress import Progress, ignore
from ..storage import Location, Locations, WriteStore
from .chunk import ChunkResult, chunk, cut_files, finish
from .ingest import IngestResult, ingest_surveyed, record, survey


def ingest_and_chunk(store: WriteStore, source: Location | str, product: str, version: str, executor: cf.Executor,
                     progress: Progress = ignore, locations: Locations = Locations(),
                     on_total: Callable[[int], None] | None = None) -> tuple[IngestResult, ChunkResult]:
    """Both steps; ``on_total(bytes)`` is told the build's size once it is known, when its
    files are read once."""
    s = survey(store, source, product, version, locations)
    if s.unhashed is None or s.existing is not None:
        ingested = ingest_surveyed(store, s, executor, progress)
        return ingested, chunk(store, product, version, executor, progress, locations)
    if on_total is not None:
        on_total(sum(f.size for f in s.unhashed.files))
    cutting = time.monotonic()
    params, cut = cut_files(store, s.unhashed, executor, progress, locations)
    inv = s.unhashed.with_entries([dataclasses.replace(e, hash_sha256=cut.digests[e.path]) if e.type == "file" else e
                                   for e in s.unhashed.entries])
    ingested = record(store, s, inv)
    return ingested, finish(store, inv, params, cut, cutting)
