"""ingest: record a build's inventory (paths, sizes, modes, links, SHA-256) in the repository.

Nothing is written unless the whole build is readable and safe: unsafe entries, devices,
truncated or corrupt archives are refused first. Ingesting the same content again is a
no-op; different content under an existing version is refused.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import cast

from .. import layout
from ..core.parallel import as_completed, batches
from ..core.progress import Progress, ignore
from ..core.safety import check_columns, check_tree
from ..errors import SourceInvalid, VersionConflict
from ..formats import inventory
from ..formats.inventory import DIGEST, Inventory, SourceData
from ..storage import Location, Locations, WriteStore, marker
from .source_ranges import sha256_range
from .sources import PACKED_KINDS, Pack, scan_directory, scan_local, scan_packed, scan_tar_in_place, source_kind
HASH_BATCH_BYTES = 64 << 20
HASH_BATCH_FILES = 512


@dataclass(frozen=True)
class IngestResult:
    product: str
    version: str
    source: str
    kind: str
    files: int
    dirs: int
    symlinks: int
    bytes: int
    created: bool
    elapsed_s: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def ingest(
    store: WriteStore,
    source: Location | str,
    product: str,
    version: str,
    executor: cf.Executor,
    progress: Progress = ignore,
    locations: Locations = Locations(),
) -> IngestResult:
    """Inventory the build at ``source``; ``locations`` gives the settings of the locations
    it names (the source itself when given as a URL)."""
    return ingest_surveyed(store, survey(store, source, product, version, locations), executor, progress)


@dataclass(frozen=True)
class Survey:
    """A build looked at, before its bytes are read: its entries, checked safe, when it
    is a directory or a tar read in place (``unhashed``: their SHA-256 still to come)."""

    source: Location
    kind: str
    blank: Inventory
    existing: Inventory | None
    unhashed: Inventory | None
    started: float


def survey(store: WriteStore, source: Location | str, product: str, version: str,
           locations: Locations = Locations()) -> Survey:
    started = time.monotonic()
    layout.check_product(product)
    layout.check_version(version)
    source = _absolute(locations.resolve(source))
    kind = source_kind(source)
    existing = inventory.load(store, product, version) if store.has(layout.inventory_key(product, version)) else None
    blank = Inventory(product, version, source.url, kind, SourceData("blob", url=source.url))
    unhashed = None
    if kind not in PACKED_KINDS:
        if kind == "directory":
            _refuse_repository_inside(source, store.location)
            blank = blank.with_data(SourceData("directory", url=source.url))
            if source.is_local:
                listed = scan_local(source.url, source.local_path)
                check_columns(listed.paths, listed.types, listed.targets, source.url)
                unhashed = blank.with_columns(listed.paths, listed.types, listed.sizes, listed.executable,
                                              listed.targets)
            else:
                unhashed = blank.with_entries(check_tree(scan_directory(source), source.url))
        else:
            unhashed = blank.with_entries(check_tree(scan_tar_in_place(source), source.url))
    return Survey(source, kind, blank, existing, unhashed, started)


def ingest_surveyed(store: WriteStore, s: Survey, executor: cf.Executor, progress: Progress = ignore) -> IngestResult:
    if s.unhashed is None:
        inv = _ingest_packed(store, s.source, s.blank, s.existing, progress)
    else:
        inv = s.unhashed.with_hashes(_hash_files(s.unhashed, s.source, executor, progress))
    return record(store, s, inv)


def record(store: WriteStore, s: Survey, inv: Inventory) -> IngestResult:
    """Write the inventory if the version has none; refuse other content under it."""
    existing, created = s.existing, False
    if existing is None:
        marker.mark(store)
        # Entries come from check_tree (stricter than the schema's paths), sizes from the
        # source, digests from hashlib: the schema's checks per entry would cost a second
        # per 100,000 files here, and a reader of the inventory runs them anyway.
        created = store.put_if_absent(layout.inventory_key(inv.product, inv.version), inv.to_bytes_known_valid())
        if not created:  # another ingest of this version got there first
            existing = inventory.load(store, inv.product, inv.version)
    if existing is not None and not existing.same_content(inv):
        raise VersionConflict(
            f"{inv.product} {inv.version} was already ingested with different content; "
            f"{s.source.url} is not the same build (use a new version)"
        )
    return IngestResult(
        product=inv.product,
        version=inv.version,
        source=s.source.url,
        kind=s.kind,
        files=inv.file_count,
        dirs=inv.types.count("d"),
        symlinks=inv.types.count("l"),
        bytes=inv.file_bytes,
        created=created,
        elapsed_s=round(time.monotonic() - s.started, 3),
    )


def _refuse_repository_inside(source: Location, repository: Location) -> None:
    """A repository kept in the build's directory (``depot run .`` with the default
    ``./depot-repo``) would become part of the build it stores."""
    if source.is_local and repository.is_local:
        build, repo = (os.path.realpath(loc.local_path) for loc in (source, repository))
        if os.path.commonpath([build, repo]) == build:
            raise SourceInvalid(f"{source.url}: holds the repository {repository.url}, which would be ingested "
                                "as part of the build; keep the repository elsewhere (--repo)")


def _absolute(source: Location) -> Location:
    """Local paths are recorded absolute, so that chunk can run from anywhere."""
    return dataclasses.replace(source, url=os.path.abspath(source.url)) if source.is_local else source


def _ingest_packed(store: WriteStore, source: Location, blank: Inventory, existing: Inventory | None,
                   progress: Progress) -> Inventory:
    """Compressed tars and zips: one streaming pass copies file bytes into a staged pack.

    When the version exists already, a first pass only hashes, so that a conflicting
    upload never touches the pack of the version it conflicts with.
    """
    key = layout.staged_pack_key(blank.product, blank.version)
    inv = blank.with_data(SourceData("blob", key=key))

    def scan(out) -> Inventory:
        pack = _CountingPack(out, progress)
        return inv.with_entries(check_tree(scan_packed(source, blank.source_kind, pack), blank.source_url))

    if existing is not None:
        inv = scan(None)
        if not existing.same_content(inv):
            return inv  # the caller refuses it
        lost_pack = existing.data.key == key and not store.has(key)
        if not lost_pack or store.has(layout.manifest_key(blank.product, blank.version)):
            return inv
    with store.writer(key) as out:  # published only if the scan and the checks pass
        return scan(out)


class _CountingPack(Pack):
    def __init__(self, out, progress: Progress):
        super().__init__(out)
        self._progress = progress

    def add(self, blocks):
        result = super().add(blocks)
        self._progress(result[1])
        return result


def hash_files(items: list[tuple[int, Location, int, int]]) -> list[tuple[int, bytes]]:
    """[(number, SHA-256)] of each (number, location, offset, size)."""
    return [(i, bytes.fromhex(sha256_range(loc, offset, size))) for i, loc, offset, size in items]


def _hash_files(inv: Inventory, source: Location, executor: cf.Executor, progress: Progress) -> bytes:
    """The files' SHA-256, end to end in file order."""
    directory = inv.data.layout == "directory"
    files = [(i, source.child(path) if directory else source, 0 if directory else offset, size)
             for i, (path, size, offset) in enumerate(zip(inv.file_paths(), inv.sizes, inv.offsets))]
    calls = [(hash_files, batch) for batch in batches(files, lambda f: f[3], HASH_BATCH_BYTES, HASH_BATCH_FILES)]
    digests = bytearray(DIGEST * len(files))
    for (_, batch), result in as_completed(executor, calls):
        for i, digest in cast("list[tuple[int, bytes]]", result):
            digests[DIGEST * i : DIGEST * i + DIGEST] = digest
        progress(sum(f[3] for f in batch))
    return bytes(digests)
