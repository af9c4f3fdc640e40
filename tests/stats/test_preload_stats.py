"""Stats of an embargoed version: 1.0.0 and 1.1.0 public, 1.2.0 built embargoed and
published, then released. The versions table says it was embargoed, with its key, its
sealed and pre-load bytes, and where its release stands (scheduled, then released: the
releases table follows, re-exported only when that changes); the publishes table says
which versions a publish carried embargoed and which released; the report has a Pre-load
part with those figures. A product never embargoed has no Pre-load part."""

from __future__ import annotations

import concurrent.futures as cf
import datetime

import pytest

from depot_testing.fixtures import PRODUCT, chunk_fixture_versions, fixture_tar
from pipeline.build.embargo import sealing_for
from pipeline.build.run import ingest_and_chunk
from pipeline.formats import sealed
from pipeline.publish.publish import publish
from pipeline.publish.release import release
from pipeline.stats.export import export
from pipeline.stats.query import query
from pipeline.stats.report import collect, render
from pipeline.storage import open_store
from pipeline.trust import content_keys

T0 = datetime.datetime(2026, 12, 24, 18, 0, 0, tzinfo=datetime.timezone.utc)
COLUMNS = "version, embargoed, key_id, sealed_bytes, preload_bytes, release_at, released"


def rows(store, sql: str) -> list[tuple]:
    return query(store, sql).rows


@pytest.fixture
def repo(tmp_path):
    store = chunk_fixture_versions(tmp_path / "repo", versions=["1.0.0", "1.1.0"])
    key = content_keys.create(tmp_path / "keys", PRODUCT, "1.2.0")
    with cf.ThreadPoolExecutor(2) as ex:
        ingest_and_chunk(store, str(fixture_tar("1.2.0")), PRODUCT, "1.2.0", ex,
                         sealing=sealing_for(store, PRODUCT, key))
    m = sealed.load_manifest(store, PRODUCT, "1.2.0", sealed.one_key(key))
    return store, key, m, content_keys.ContentKeys(tmp_path / "keys").find, open_store(str(tmp_path / "origin"))


def test_versions_publishes_and_the_report_say_what_was_embargoed_and_released(repo):
    store, key, m, finder, origin = repo
    sealed_bytes = sum(c.stored_size for c in m.unique_chunks().values() if c.key_id)
    assert 0 < sealed_bytes < m.totals()["stored_bytes"]
    publish(store, [origin], PRODUCT, ["1.0.0", "1.1.0", "1.2.0"], keys=finder)
    release(store, PRODUCT, "1.2.0", key, now=T0, at=T0 + datetime.timedelta(days=1))
    first = export(store, keys=finder)
    assert first.rows["releases"] == 1
    assert rows(store, f"SELECT {COLUMNS} FROM versions ORDER BY version") == [
        ("1.0.0", False, None, 0, None, None, False),
        ("1.1.0", False, None, 0, None, None, False),
        ("1.2.0", True, key.key_id, sealed_bytes, m.totals()["stored_bytes"], "2026-12-25T18:00:00Z", False)]
    assert rows(store, "SELECT versions, embargoed_versions, released_versions FROM publishes") == [
        ("1.0.0,1.1.0,1.2.0", "1.2.0", "")]
    html, _ = render(collect(store))
    assert 'id="preload-product-starfall"' in html and "scheduled for 2026-12-25 18:00 UTC" in html
    assert f"<td>{key.key_id}</td>" in html

    assert export(store, keys=finder).rows == {}  # nothing changed: nothing rewritten
    release(store, PRODUCT, "1.2.0", key, now=T0 + datetime.timedelta(days=1))  # due: the key goes out
    publish(store, [origin], PRODUCT, ["1.2.0"], keys=finder)
    again = export(store, keys=finder)
    assert (again.versions, again.rows["releases"], again.rows["publishes"]) == (0, 1, 1)
    assert rows(store, "SELECT version, release_at, released FROM versions WHERE embargoed") == [
        ("1.2.0", "2026-12-25T18:00:00Z", True)]
    assert rows(store, "SELECT count(*) FROM releases") == [(1,)]  # the scheduled state replaced
    assert rows(store, "SELECT versions, embargoed_versions, released_versions FROM publishes ORDER BY id") == [
        ("1.0.0,1.1.0,1.2.0", "1.2.0", ""), ("1.2.0", "", "1.2.0")]
    html, _ = render(collect(store))
    assert "released 2026-12-25 18:00 UTC" in html


def test_a_product_never_embargoed_has_no_preload_part(tmp_path):
    store = chunk_fixture_versions(tmp_path / "repo", versions=["1.0.0"])
    export(store)
    assert rows(store, "SELECT embargoed, key_id, sealed_bytes, preload_bytes, released FROM versions") == [
        (False, None, 0, None, False)]
    html, _ = render(collect(store))
    assert "preload-product" not in html and "Pre-load" not in html
