"""The store contract on S3: moto's server over real HTTP on 127.0.0.1. Racing writers in
separate processes prove that create-if-absent and compare-and-swap are the server's
conditional writes, not a check followed by a write."""

import pytest

from pipeline.storage import open_store
from depot_testing.store_contract import WriteStoreContract


class TestS3Store(WriteStoreContract):
    @pytest.fixture
    def store(self, s3, s3_bucket):
        return open_store(s3.resolve(f"{s3_bucket}/some/prefix"))


def test_an_unreachable_endpoint_is_unavailable_not_empty():
    from pipeline.errors import StoreUnavailable
    from pipeline.storage import Location

    store = open_store(Location("s3://bucket/repo", endpoint="http://127.0.0.1:9", timeout=0.5))
    for call in (lambda: store.has("a/b"), lambda: list(store.list("a/")), lambda: store.put_if_absent("a/b", b"x")):
        with pytest.raises(StoreUnavailable, match="s3://bucket/repo"):
            call()


def test_a_missing_bucket_is_unavailable_not_empty(s3):
    from pipeline.errors import StoreUnavailable

    store = open_store(s3.resolve("s3://no-such-bucket-here/repo"))
    for call in (lambda: store.has("a/b"), lambda: list(store.list("a/")), lambda: store.put_if_absent("a/b", b"x")):
        with pytest.raises(StoreUnavailable, match="bucket 'no-such-bucket-here' does not exist"):
            call()


def test_a_read_is_one_request_and_the_listing_proves_which_bytes_are_there(s3_endpoint, s3_bucket):
    """A GET alone (no HEAD first); the listing's ETag is the MD5 of bytes written in one
    part, so it proves these bytes and no others, even of the same size."""
    from depot_testing.faulty_proxy import FaultyProxy
    from pipeline.storage import Location

    bucket = s3_bucket.removeprefix("s3://")
    with FaultyProxy(s3_endpoint, {}) as proxy:
        store = open_store(Location(f"{s3_bucket}/p", endpoint=proxy.url))
        store.put("k/a", b"ours")
        proxy.log.clear()
        assert store.get("k/a") == b"ours"
        assert [(method, path.split("?", 1)[0]) for method, path in proxy.log] == [("GET", f"/{bucket}/p/k/a")]
        [info] = store.scan("k/")
    assert (info.holds(b"ours"), info.holds(b"ourz"), info.holds(b"our")) == (True, False, False)
