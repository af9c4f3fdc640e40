"""stats export and query: tables checked against the fixture builds, incremental by
construction, the documented queries run, and S3 read through depot's own locations."""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import shutil
import subprocess

import pytest

from helpers import DEPOT, ROOT
from depot_testing.fixtures import PRODUCT, VERSIONS, chunk_fixture_versions
from pipeline import layout
from pipeline.formats import manifest, plan as plan_doc
from pipeline.stats.export import export
from pipeline.stats.query import query
from pipeline.storage import open_store


@pytest.fixture
def repo(planned, tmp_path):
    """A copy of the session's repository with every pair planned (conftest's ``planned``)."""
    shutil.copytree(planned, tmp_path / "repo")
    return open_store(str(tmp_path / "repo"))


def rows(store, sql):
    return query(store, sql).to_dicts()


def test_versions_files_and_updates_match_the_repository(repo):
    r = export(repo)
    assert (r.versions, r.plans, r.publishes) == (4, 6, 0)
    for row in rows(repo, "SELECT * FROM versions"):
        t = manifest.load(repo, PRODUCT, row["version"]).totals()
        assert (row["files"], row["bytes"], row["unique_bytes"], row["stored_bytes"]) == \
            (t["files"], t["bytes"], t["unique_bytes"], t["stored_bytes"])
    first = rows(repo, "SELECT * FROM versions WHERE version = '1.0.0'")[0]
    assert first["new_stored_bytes_vs_store"] == first["stored_bytes"] and first["previous_version"] is None
    added = rows(repo, "SELECT sum(new_stored_bytes_vs_store) AS s FROM versions")[0]["s"]
    assert added == sum(repo.size(k) for k in repo.list(layout.CHUNK_PREFIX))  # the store, object by object
    for row in rows(repo, "SELECT * FROM updates"):
        p = plan_doc.load(repo, PRODUCT, row["from_version"], row["to_version"])
        assert (row["delta_download_bytes"], row["chunk_download_bytes"], row["files_patch"], row["patch_bytes"]) == \
            (p.delta_download_bytes, p.chunk_download_bytes, p.count("patch"), sum(op.patch_bytes for op in p.files))
    changes = {r["path"]: r["change"] for r in rows(repo, "SELECT path, change FROM files WHERE version = '1.2.0'")}
    # what the plan 1.1.0 -> 1.2.0 says of the same files (see tests/delta)
    assert (changes["data/levels/arena02.dat"], changes["bin/starfall"], changes["bin/libengine.so"]) == \
        ("moved", "same", "changed")
    assert rows(repo, "SELECT count(*) AS n FROM chunks")[0]["n"] == \
        len({c for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0") for c in manifest.load(repo, PRODUCT, v).unique_chunks()})


def test_a_second_export_reads_nothing_and_a_new_version_reads_only_its_own(repo, tmp_path):
    first = export(repo)
    assert first.read_documents > 0
    again = export(repo)
    assert (again.read_documents, again.versions, again.rows) == (0, 0, {})
    # a new version of another product: its manifest only (no previous version), nothing else re-read
    from depot_testing.fixtures import fixture_params, fixture_tar
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest

    products.configure(repo, "other", fixture_params())  # cut like starfall: the same chunks
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(repo, str(fixture_tar("1.0.0")), "other", "1", ex)
        chunk(repo, "other", "1", ex)
    more = export(repo)
    assert (more.versions, more.plans, more.read_documents) == (1, 0, 1)
    assert rows(repo, "SELECT first_product FROM chunks WHERE products = 2 LIMIT 1")[0]["first_product"] == PRODUCT
    other = rows(repo, "SELECT * FROM versions WHERE product = 'other'")[0]
    assert other["new_bytes_vs_store"] == 0  # every chunk of it was in the store already


def documented_queries() -> list[str]:
    text = (ROOT / "docs" / "stats.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, re.S)


@pytest.mark.parametrize("sql", documented_queries(), ids=lambda q: q.split("\n")[0][:40])
def test_the_documented_queries_answer(repo, sql):
    export(repo)
    result = query(repo, sql)
    assert result.rows and all(v is not None for v in result.rows[0])


def test_stats_on_s3_are_read_through_the_locations(repo, s3, s3_bucket):
    out = open_store(s3.resolve(f"{s3_bucket}/stats-copy"))
    export(repo, out)
    sql = "SELECT version, bytes, new_stored_bytes_vs_store FROM versions ORDER BY version"
    assert query(out, sql).rows == (export(repo) and query(repo, sql).rows)


def test_a_publish_is_read_once(repo, tmp_path):
    from pipeline.publish.publish import publish

    origin = open_store(str(tmp_path / "origin"))
    publish(repo, [origin], PRODUCT, ["1.0.0"])
    first = export(repo)
    assert (first.publishes, first.rows["publishes"]) == (1, 1)
    (record,) = repo.list(layout.PUBLISH_LOG_PREFIX)
    repo.put(record, b"not read again")  # an exported record is not opened again
    publish(repo, [origin], PRODUCT, ["1.1.0"])
    second = export(repo)
    assert (second.publishes, second.read_documents, second.rows) == (1, 1, {"publishes": 1})
    assert rows(repo, "SELECT versions FROM publishes ORDER BY versions") == [{"versions": "1.0.0"}, {"versions": "1.1.0"}]


def test_a_version_chunked_between_exported_ones_becomes_the_next_ones_previous(tmp_path):
    store = chunk_fixture_versions(tmp_path / "repo", versions=["1.0.0", "1.2.0"])
    export(store)
    chunk_fixture_versions(tmp_path / "repo", versions=["1.1.0"])
    r = export(store)
    assert r.versions == 2  # 1.1.0, and 1.2.0 compared again
    row = rows(store, "SELECT * FROM versions WHERE version = '1.2.0'")[0]
    before = set(manifest.load(store, PRODUCT, "1.1.0").unique_chunks())
    new = [c for i, c in manifest.load(store, PRODUCT, "1.2.0").unique_chunks().items() if i not in before]
    assert (row["previous_version"], row["new_bytes_vs_previous"]) == ("1.1.0", sum(c.size for c in new))
    changes = rows(store, "SELECT change, count(*) AS n FROM files WHERE version = '1.2.0' GROUP BY ALL ORDER BY 1")
    assert {c["change"]: c["n"] for c in changes}["moved"] == 2  # as against 1.1.0 (see test_report)


def test_product_names_that_look_like_numbers_stay_text(tmp_path):
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest
    from depot_testing.fixtures import fixture_params, fixture_tar

    store = open_store(str(tmp_path / "repo"))
    products.configure(store, "2024", fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(fixture_tar("1.0.0")), "2024", "1", ex)
        chunk(store, "2024", "1", ex)
    export(store)
    assert rows(store, "SELECT product, version FROM versions") == [{"product": "2024", "version": "1"}]


def test_query_answers_as_csv_and_as_a_json_list_of_rows(repo, tmp_path):
    export(repo)
    sql = ("SELECT version, files, bytes, previous_version, 'a,\"b\"' AS note FROM versions "
           "WHERE product = 'starfall' ORDER BY version")
    totals = {v: manifest.load(repo, PRODUCT, v).totals() for v in VERSIONS}
    expected = [{"version": v, "files": totals[v]["files"], "bytes": totals[v]["bytes"],
                 "previous_version": VERSIONS[i - 1] if i else None, "note": 'a,"b"'} for i, v in enumerate(VERSIONS)]
    run = lambda *a: subprocess.run(DEPOT + ["--repo", str(tmp_path / "repo"), *a], capture_output=True, cwd=ROOT)

    p = run("stats", "query", sql, "--format", "csv")
    assert p.returncode == 0, p.stderr
    rows = "".join(f'{r["version"]},{r["files"]},{r["bytes"]},{r["previous_version"] or ""},"a,""b"""\n'
                   for r in expected)
    assert p.stdout == ("version,files,bytes,previous_version,note\n" + rows).encode()

    for args in (["stats", "query", sql, "--format", "json"], ["--json", "stats", "query", sql]):
        p = run(*args)
        assert p.returncode == 0, p.stderr
        assert p.stdout == (json.dumps(expected) + "\n").encode()


def test_a_packed_version_exports_each_files_share_and_each_chunk_whole(tmp_path):
    """Small files packed into shared chunks: a file's stored size is its share of each
    chunk it has bytes in; chunks, their sizes and the version's figures count each chunk
    once, whole. Expected figures come from the chunk objects and the files' slices."""
    from depot_testing.packed import PRODUCT as GAME, chunk_packed_versions, write_builds

    store = chunk_packed_versions(tmp_path / "repo", write_builds(tmp_path / "builds"), ("1.0", "2.0"), plans=False)
    export(store)
    old, new = (manifest.load(store, GAME, v) for v in ("1.0", "2.0"))
    stored = {i: len(store.get(layout.chunk_key(i))) for f in new.files for c in f.chunks for i in [c.id]}
    size: dict[str, int] = {}  # a chunk's bytes: the slices of it that the version's files hold
    for f in new.files:
        for c in f.chunks:
            size[c.id] = size.get(c.id, 0) + c.size
    old_ids = {c.id for f in old.files for c in f.chunks}
    before = {f.path: f.hash_sha256 for f in old.files}
    expected = {}
    for f in new.files:
        shared = {c.id: c.size for c in f.chunks if c.id in old_ids}
        change = ("same" if before[f.path] == f.hash_sha256 else "changed") if f.path in before else "new"
        expected[f.path] = {"size": f.size, "stored_size": sum(stored[c.id] * c.size // size[c.id] for c in f.chunks),
                            "chunk_count": len(f.chunks), "shared_chunks": len(shared),
                            "shared_bytes": sum(shared.values()), "change": change}
    got = {r.pop("path"): r for r in rows(store, "SELECT path, size, stored_size, chunk_count, shared_chunks, "
                                                 "shared_bytes, change FROM files WHERE version = '2.0'")}
    assert got == expected
    assert got["text/b/file17a.txt"] == {"size": 1504, "stored_size": expected["text/b/file17a.txt"]["stored_size"],
                                         "chunk_count": 1, "shared_chunks": 0, "shared_bytes": 0, "change": "new"}
    assert got["text/f/file59.txt"]["chunk_count"] == 2  # it straddles two packed chunks
    assert sum(r["stored_size"] for r in got.values()) <= sum(stored.values())
    assert len(size) == 8 and sum(1 for f in new.files if len(f.chunks) == 1 and not f.chunks[0].whole) == 99

    uses = rows(store, "SELECT chunk_id, size, stored_size FROM chunk_uses WHERE version = '2.0'")
    assert {r["chunk_id"]: (r["size"], r["stored_size"]) for r in uses} == {i: (size[i], stored[i]) for i in size}
    v = rows(store, "SELECT * FROM versions WHERE version = '2.0'")[0]
    assert (v["files"], v["chunks"], v["unique_chunks"], v["unique_bytes"], v["stored_bytes"]) == \
        (101, sum(len(f.chunks) for f in new.files), 8, sum(size.values()), sum(stored.values()))
    assert v["new_stored_bytes_vs_previous"] == sum(stored[i] for i in size if i not in old_ids)
