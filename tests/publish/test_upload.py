"""The uploader's retries: the one policy, with a wait that a cancel cuts short, except
for the commit's, which completes once begun."""

from __future__ import annotations

import threading

import pytest

from depot_testing.faulty_proxy import FaultyProxy
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions
from pipeline import layout
from pipeline.errors import StoreUnavailable
from pipeline.publish.publish import publish
from pipeline.publish.upload import Cancelled, Uploader
from pipeline.storage import Location, open_store


@pytest.fixture
def uploader(tmp_path):
    return Uploader(open_store(str(tmp_path / "repo")), open_store(str(tmp_path / "origin")), retries=5,
                    cancel=threading.Event())


def test_a_cancel_during_a_try_ends_the_backoff_at_once(uploader):
    calls = []

    def unavailable():
        calls.append(1)
        uploader.cancel.set()  # Ctrl-C while this try is in flight
        raise StoreUnavailable("origin: HTTP 503")

    with pytest.raises(Cancelled):
        uploader.retrying(unavailable)
    assert (len(calls), uploader.report.retries) == (1, 1)


def test_the_commits_retries_go_on_after_a_cancel(uploader):
    calls = []

    def flaky():
        calls.append(1)
        uploader.cancel.set()
        if len(calls) < 3:
            raise StoreUnavailable("origin: HTTP 503")
        return "committed"

    assert uploader.retrying(flaky, cancellable=False) == "committed"
    assert (len(calls), uploader.report.retries) == (3, 2)


def test_an_upload_the_s3_client_gave_up_on_is_tried_again_by_the_uploader(s3, s3_endpoint, s3_bucket, tmp_path):
    """Four 503s in a row for the manifest: more than the S3 client's own tries. Without
    the uploader's retries the publish fails; with them, the manifest gets there. (How
    many of the four the S3 client absorbs varies with its retry quota: the uploader's
    count is at least one.)"""
    repo = chunk_fixture_versions(tmp_path / "repo", versions=["1.0.0"])
    manifest = layout.manifest_key(PRODUCT, "1.0.0")
    with FaultyProxy(s3_endpoint, {}, fail_first={manifest: 4}) as proxy:
        origin = open_store(Location(f"{s3_bucket}/without", endpoint=proxy.url))
        with pytest.raises(StoreUnavailable, match=manifest):
            publish(repo, [origin], PRODUCT, ["1.0.0"], retries=0)
    with FaultyProxy(s3_endpoint, {}, fail_first={manifest: 4}) as proxy:
        origin = open_store(Location(f"{s3_bucket}/with", endpoint=proxy.url))
        r = publish(repo, [origin], PRODUCT, ["1.0.0"], retries=2).origins[0]
        puts = [path for method, path in proxy.log if method == "PUT" and path.endswith(manifest)]
    assert (proxy.injected["503"], len(puts)) == (4, 5) and r.retries >= 1
    assert open_store(s3.resolve(f"{s3_bucket}/with")).get(manifest) == repo.get(manifest)
