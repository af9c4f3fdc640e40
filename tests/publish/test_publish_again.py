"""publish with nothing to do: one listing per origin, and no other request. What the
listing proves an origin holds (S3's ETag is the MD5 of bytes written in one part) is not
read again; what it cannot prove, a forged or stale file, is read and replaced."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from depot_testing.faulty_proxy import FaultyProxy
from depot_testing.fixtures import PRODUCT, signed_repository
from pipeline import layout
from pipeline.publish.publish import publish
from pipeline.storage import Location, open_store

REGIONS = ("msk", "nsk", "spb")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed repository whose stable channel delivers 1.1.0 (a plan index, pointers)."""
    return signed_repository(tmp_path_factory.mktemp("signed"), versions=("1.0.0", "1.1.0"))


def _objects(log: list[tuple[str, str]], method: str) -> list[str]:
    """The object paths of the requests of ``method`` (listings have no object path)."""
    return sorted(urlsplit(path).path for m, path in log if m == method and urlsplit(path).path.count("/") > 1)


def test_a_publish_with_nothing_to_do_lists_each_origin_once_and_sends_nothing_else(signed, s3_endpoint,
                                                                                   s3_bucket):
    store = open_store(str(signed / "repo"))
    bucket = s3_bucket.removeprefix("s3://")
    with FaultyProxy(s3_endpoint, {}) as proxy:
        origins = [open_store(Location(f"{s3_bucket}/{r}", endpoint=proxy.url)) for r in REGIONS]
        first = publish(store, origins, PRODUCT, ["1.1.0"], channels=["stable"])
        proxy.log.clear()
        again = publish(store, origins, PRODUCT, ["1.1.0"], channels=["stable"])
        requests = list(proxy.log)
    assert sorted((method, urlsplit(path).path, parse_qs(urlsplit(path).query).get("prefix"))
                  for method, path in requests) == [("GET", f"/{bucket}", [f"{r}/"]) for r in REGIONS]
    assert [(r.uploaded, r.skipped, r.listed, r.timestamp) for r in again.origins] == \
        [(0, f.uploaded, f.uploaded + 1, "unchanged") for f in first.origins]  # + 1: the store's marker


def test_a_forged_timestamp_and_a_stale_snapshot_of_the_same_sizes_are_read_and_replaced(signed, s3, s3_endpoint,
                                                                                          s3_bucket):
    """Bytes of the same size as ours, but not ours: the listing's ETag tells them apart, so
    they alone are read again, and replaced; every other object is left unread."""
    store = open_store(str(signed / "repo"))
    ts_key = layout.metadata_key("timestamp")
    bucket = s3_bucket.removeprefix("s3://")
    with FaultyProxy(s3_endpoint, {}) as proxy:
        origin = open_store(Location(f"{s3_bucket}/o", endpoint=proxy.url))
        publish(store, [origin], PRODUCT, ["1.1.0"])
        [snapshot_key] = [k for k in origin.list(layout.METADATA_PREFIX) if k.endswith(".snapshot.json")]
        direct = open_store(s3.resolve(f"{s3_bucket}/o"))
        for key in (ts_key, snapshot_key):
            ours = store.get(key)
            at = ours.index(b'"sig":"') + len(b'"sig":"')  # one character of the signature changed
            direct.put(key, ours[:at] + (b"0" if ours[at:at + 1] != b"0" else b"1") + ours[at + 1:])
        proxy.log.clear()
        r = publish(store, [origin], PRODUCT, ["1.1.0"]).origins[0]
        requests = list(proxy.log)
    assert r.timestamp == "replaced"
    read_back = {f"/{bucket}/o/{ts_key}", f"/{bucket}/o/{snapshot_key}"}
    assert set(_objects(requests, "GET")) == read_back
    assert _objects(requests, "PUT") == sorted(read_back)
    for key in (ts_key, snapshot_key):
        assert direct.get(key) == store.get(key)
