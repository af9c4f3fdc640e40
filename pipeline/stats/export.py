"""stats export: per-version parquet for analysts, written incrementally.

Under ``stats/`` of the repository (or any other location), hive-partitioned by product,
one file per version, plan or publish, so that an export reads only what is new:

    stats/versions/product=P/V.parquet      one row: the version's sizes (written last: a
                                            version is exported once this file exists)
    stats/files/product=P/V.parquet         a row per file, compared with the previous version
    stats/chunk_uses/product=P/V.parquet    a row per distinct chunk the version uses
    stats/updates/product=P/A__B.parquet    one row per update plan A -> B
    stats/publishes/product=P/ID.parquet    a row per origin of one publish
    stats/releases/product=P/V__AT__STATE.parquet  one row: where an embargoed version's
                                            release stands (scheduled or released at AT);
                                            replaced when that changes

The tables analysts query (docs/stats.md) are DuckDB views over these (stats.query):
``chunks`` and the store-wide figures of ``versions`` are computed from ``chunk_uses`` at
query time, which is what keeps an export's cost to what is new; ``versions`` takes its
release columns from ``releases``, which can change after the version is exported.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from .. import layout
from ..core.versions import earlier, sort_versions
from ..formats import plan as plan_doc
from ..formats import release as release_doc
from ..formats import sealed
from ..formats.release import key_finder
from ..formats.manifest import Manifest
from ..formats.publish_record import PublishRecord
from ..errors import ContentLocked
from ..storage import PrunableStore, WriteStore

STATS_PREFIX = layout.STATS_PREFIX
TABLES = ("versions", "files", "chunk_uses", "updates", "publishes", "releases")
ENGINES = ("zstd-prefix", "hdiffpatch", "bsdiff4")


def table_key(table: str, product: str, name: str) -> str:
    return f"{STATS_PREFIX}{table}/product={layout.check_product(product)}/{name}.parquet"


@dataclass
class ExportResult:
    out: str
    versions: int = 0
    plans: int = 0
    publishes: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    read_documents: int = 0  # manifests, plans and records read: what the cost grows with
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def export(repo: PrunableStore, out: WriteStore | None = None, keys: sealed.KeyFinder | None = None) -> ExportResult:
    """Export what is new since the last export into ``out`` (default: the repository).
    An embargoed version is read with its released key, or with ``keys`` (the release
    side's): CONTENT_LOCKED, naming it, without one."""
    started = time.monotonic()
    out = out or repo
    result = ExportResult(out.url)
    done = set(out.list(STATS_PREFIX))
    chunked: dict[str, list[str]] = {}
    modified: dict[str, float] = {}
    releases: list[tuple[str, str]] = []
    for o in repo.scan(layout.PRODUCT_PREFIX):
        found = layout.version_document_of(o.key)
        if found and found[2] == "manifest.json":
            chunked.setdefault(found[0], []).append(found[1])
            modified[o.key] = o.modified
        elif found and found[2] == "release.json":
            releases.append(found[:2])
    for product, version in releases:
        _export_release(repo, out, product, version, done, result)
    for product, versions in sorted(chunked.items()):
        versions = sort_versions(versions)
        opened = sealed.Opened(repo, key_finder(repo, product, keys))
        for version in _to_export(product, versions, done):
            _export_version(opened, out, product, version, versions, modified, result)
        for key in repo.list(layout.plans_prefix(product)):
            pair = layout.plan_pair_of(key)
            if pair and table_key("updates", product, f"{pair[0]}__{pair[1]}") not in done:
                _write(out, table_key("updates", product, f"{pair[0]}__{pair[1]}"), [_update_row(opened, key)], result)
                result.read_documents += 1
                result.plans += 1
    for key in repo.list(layout.PUBLISH_LOG_PREFIX):
        record_of = layout.publish_record_of(key)
        if record_of is None or table_key("publishes", *record_of) in done:
            continue
        record = PublishRecord.from_bytes(repo.get(key), repo.url_of(key))
        _write(out, table_key("publishes", record.product, record.id), record.rows(), result)
        result.read_documents += 1
        result.publishes += 1
    result.elapsed_s = round(time.monotonic() - started, 3)
    return result


def _to_export(product: str, versions: list[str], done: set[str]) -> list[str]:
    """The versions not exported yet, and the exported version right after each of them:
    a version chunked later than a newer one becomes that one's previous version, so the
    newer one's comparison is redone."""
    todo = []
    for i, version in enumerate(versions):
        if table_key("versions", product, version) not in done:
            todo.append(version)
            if i + 1 < len(versions) and table_key("versions", product, versions[i + 1]) in done:
                todo.append(versions[i + 1])
    return sorted(set(todo), key=versions.index)


def _export_release(repo: WriteStore, out: WriteStore, product: str, version: str, done: set[str],
                    result: ExportResult) -> None:
    """Where the release of an embargoed version stands, if that changed since the last
    export: the file's name says it, so a release that did not change is not rewritten."""
    r = release_doc.load(repo, product, version)
    released = release_doc.is_released(repo, product, r.key_id)
    name = f"{version}__{r.at.replace('-', '').replace(':', '')}__{'released' if released else 'scheduled'}"
    key = table_key("releases", product, name)
    if key in done:
        return
    for old in done:
        if old.startswith(table_key("releases", product, f"{version}__").removesuffix(".parquet")):
            out.delete(old)
    _write(out, key, [{"product": product, "version": version, "key_id": r.key_id, "release_at": r.at,
                       "released": released}], result)
    result.read_documents += 1


def _export_version(repo: sealed.Opened, out: WriteStore, product: str, version: str, versions: list[str],
                    modified: dict[str, float], result: ExportResult) -> None:
    m = sealed.load_manifest(repo.reader, product, version, repo.find)
    key_id = release_doc.sealed_key_id(repo.reader, product, version)
    before = earlier(versions, version)
    previous = sealed.load_manifest(repo.reader, product, before[-1], repo.find) if before else None
    result.read_documents += 2 if previous else 1
    created = modified.get(layout.manifest_key(product, version), 0.0)
    uses = [{"product": product, "version": version, "created": created, "chunk_id": c.id, "size": c.size,
             "stored_size": c.stored_size, "codec": "zstd" if c.stored_size < c.size else "raw"}
            for c in m.unique_chunks().values()]
    _write(out, table_key("chunk_uses", product, version), uses, result)
    _write(out, table_key("files", product, version), _file_rows(m, previous), result)
    t = m.totals()
    old = set(previous.unique_chunks()) if previous else set()
    new = [c for i, c in m.unique_chunks().items() if i not in old]
    row = {"product": product, "version": version, "created": created,
           "previous_version": previous.version if previous else None,
           "files": t["files"], "bytes": t["bytes"], "chunks": t["chunks"], "unique_chunks": t["unique_chunks"],
           "unique_bytes": t["unique_bytes"], "stored_bytes": t["stored_bytes"],
           "new_bytes_vs_previous": sum(c.size for c in new),
           "new_stored_bytes_vs_previous": sum(c.stored_size for c in new),
           "dedup_ratio": round(t["bytes"] / t["unique_bytes"], 4) if t["unique_bytes"] else 1.0,
           "embargoed": key_id is not None, "key_id": key_id,
           "sealed_bytes": sum(c.stored_size for c in m.unique_chunks().values() if key_id and c.key_id == key_id),
           "preload_bytes": t["stored_bytes"] if key_id else None}
    _write(out, table_key("versions", product, version), [row], result)  # last: the version's commit
    result.versions += 1


def _file_rows(m: Manifest, previous: Manifest | None) -> list[dict]:
    """A row per file: how it compares with the previous version. ``moved``: the same
    bytes under a path the previous version did not have. A packed file's stored size is
    its share of each chunk it has a slice of, in proportion to its bytes there."""
    before = {f.path: f for f in previous.files} if previous else {}
    by_hash = {f.hash_sha256 for f in before.values()}
    old_chunks = set(previous.unique_chunks()) if previous else set()
    rows = []
    for f in m.files:
        ids = {c.id: c for c in f.chunks}
        shared = [c for i, c in ids.items() if i in old_chunks]
        same = before.get(f.path)
        if same is not None:
            change = "same" if same.hash_sha256 == f.hash_sha256 and same.executable == f.executable else "changed"
        else:
            change = "moved" if f.hash_sha256 in by_hash else "new"
        rows.append({"product": m.product, "version": m.version, "path": f.path, "size": f.size,
                     "stored_size": sum(c.stored_size * c.size // c.chunk_size for c in f.chunks),
                     "chunk_count": len(f.chunks),
                     "shared_chunks": len(shared), "shared_bytes": sum(c.size for c in shared), "change": change})
    return rows


def _update_row(repo: sealed.Opened, key: str) -> dict:
    try:
        plan = plan_doc.Plan.from_bytes(repo.get(key), repo.url_of(key))
    except ContentLocked:
        raise ContentLocked(f"{key} is sealed (a plan to or from an embargoed version), and no content key at hand "
                            "opens it (the release side's keys: --keys DIR)") from None
    row = {"product": plan.product, "from_version": plan.from_version, "to_version": plan.to_version,
           "delta_download_bytes": plan.delta_download_bytes, "chunk_download_bytes": plan.chunk_download_bytes,
           "full_download_bytes": plan.full_download_bytes,
           "required_disk_space_bytes": plan.required_disk_space_bytes,
           "patches": sum(len(op.segments) for op in plan.files), "patch_bytes": sum(op.patch_bytes for op in plan.files),
           **{f"files_{op}": plan.count(op) for op in plan_doc.OPS}, "entries_removed": len(plan.remove)}
    for engine in ENGINES:
        segments = [s for op in plan.files for s in op.segments if s.engine == engine]
        name = engine.replace("-", "_")
        row[f"patches_{name}"] = len(segments)
        row[f"patch_bytes_{name}"] = sum(s.patch_size for s in segments)
    return row


SCHEMAS = {
    "versions": pa.schema([("product", pa.string()), ("version", pa.string()), ("created", pa.float64()),
                           ("previous_version", pa.string()), ("files", pa.int64()), ("bytes", pa.int64()),
                           ("chunks", pa.int64()), ("unique_chunks", pa.int64()), ("unique_bytes", pa.int64()),
                           ("stored_bytes", pa.int64()), ("new_bytes_vs_previous", pa.int64()),
                           ("new_stored_bytes_vs_previous", pa.int64()), ("dedup_ratio", pa.float64()),
                           ("embargoed", pa.bool_()), ("key_id", pa.string()), ("sealed_bytes", pa.int64()),
                           ("preload_bytes", pa.int64())]),
    "files": pa.schema([("product", pa.string()), ("version", pa.string()), ("path", pa.string()),
                        ("size", pa.int64()), ("stored_size", pa.int64()), ("chunk_count", pa.int64()),
                        ("shared_chunks", pa.int64()), ("shared_bytes", pa.int64()), ("change", pa.string())]),
    "chunk_uses": pa.schema([("product", pa.string()), ("version", pa.string()), ("created", pa.float64()),
                             ("chunk_id", pa.string()), ("size", pa.int64()), ("stored_size", pa.int64()),
                             ("codec", pa.string())]),
    "updates": pa.schema([("product", pa.string()), ("from_version", pa.string()), ("to_version", pa.string()),
                          ("delta_download_bytes", pa.int64()), ("chunk_download_bytes", pa.int64()),
                          ("full_download_bytes", pa.int64()), ("required_disk_space_bytes", pa.int64()),
                          ("patches", pa.int64()), ("patch_bytes", pa.int64()),
                          *[(f"files_{op}", pa.int64()) for op in plan_doc.OPS], ("entries_removed", pa.int64()),
                          *[(f"{kind}_{e.replace('-', '_')}", pa.int64()) for e in ENGINES
                            for kind in ("patches", "patch_bytes")]]),
    "publishes": pa.schema([("product", pa.string()), ("id", pa.string()), ("published_at", pa.string()),
                            ("versions", pa.string()), ("origin", pa.string()), ("uploaded", pa.int64()),
                            ("uploaded_bytes", pa.int64()), ("skipped", pa.int64()), ("skipped_bytes", pa.int64()),
                            ("retries", pa.int64()), ("elapsed_s", pa.float64()),
                            ("embargoed_versions", pa.string()), ("released_versions", pa.string())]),
    "releases": pa.schema([("product", pa.string()), ("version", pa.string()), ("key_id", pa.string()),
                           ("release_at", pa.string()), ("released", pa.bool_())]),
}


def _write(out: WriteStore, key: str, rows: list[dict], result: ExportResult) -> None:
    """Rows as one parquet file; the product column is the partition (hive style)."""
    table = SCHEMAS[key.split("/")[1]]
    columns = [f for f in table if f.name != "product"]
    data = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "product"} for r in rows],
                                schema=pa.schema(columns))
    buf = io.BytesIO()
    pq.write_table(data, buf, compression="zstd")
    out.put(key, buf.getvalue())
    name = key.split("/")[1]
    result.rows[name] = result.rows.get(name, 0) + len(rows)


