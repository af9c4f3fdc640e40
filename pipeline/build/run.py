"""run: ingest then chunk, reading a directory's (or a tar's) files once.

Ingest alone hashes every file for the inventory, and chunk reads every file again to cut
it and checks that its SHA-256 is still the inventory's. When both run in one go on a
build read in place, one pass does both: the files are cut, stored and hashed, then the
inventory is written with those hashes, then the manifest. Until the inventory is written
the version is not listed; a run killed before leaves chunks only, which the next run
finds stored. An archive (whose bytes ingest stages in one pass anyway), or a version
ingested before, takes the two steps.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Callable

from ..core.progress import Progress, ignore
from ..storage import Location, Locations, WriteStore
from .chunk import ChunkResult, chunk, cut_files, finish
from .embargo import Sealing
from .ingest import IngestResult, ingest_surveyed, record, survey


def ingest_and_chunk(store: WriteStore, source: Location | str, product: str, version: str, executor: cf.Executor,
                     progress: Progress = ignore, locations: Locations = Locations(),
                     on_total: Callable[[int], None] = lambda n: None,
                     sealing: Sealing | None = None) -> tuple[IngestResult, ChunkResult]:
    """Both steps; ``on_total(bytes)`` is told how many bytes ``progress`` will count, once
    that is known; ``sealing``: what an embargoed build seals (see build.embargo)."""
    s = survey(store, source, product, version, locations)
    if s.unhashed is None or s.existing is not None:
        ingested = ingest_surveyed(store, s, executor, progress)
        on_total(2 * ingested.bytes)  # ingest's pass, then chunk's
        return ingested, chunk(store, product, version, executor, progress, locations, sealing)
    on_total(s.unhashed.file_bytes)
    cutting = time.monotonic()
    params, cut = cut_files(store, s.unhashed, executor, progress, locations, sealing)
    inv = s.unhashed.with_hashes(cut.digests)
    return record(store, s, inv), finish(store, inv, params, cut, cutting, sealing)
