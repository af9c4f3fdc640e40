"""Pointers and plan indexes on origins only move forward: written by compare-and-swap
against the version read, never over a pointer with a higher serial or a plan index that
a newer signature of the repository names."""

from __future__ import annotations

import shutil

import pytest

from pipeline import layout
from pipeline.client.install import resolve_version
from pipeline.delta.diff import write_index
from pipeline.formats import channel
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.publish.retire import retire
from pipeline.storage import open_store
from depot_testing.fixtures import PRODUCT, signed_repository
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

from helpers import root_of, signed_player


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    return signed_repository(tmp_path_factory.mktemp("signed"), versions=("1.0.0", "1.1.0", "1.2.0"))


def test_an_older_publisher_never_moves_a_signed_origin_back(signed, tmp_path):
    """A publisher holding the repository as it was (stable serial 1, every plan) publishes
    after one holding it as it is now (stable serial 2, the plans of 1.1.0 retired): the
    origin keeps the newer pointer, the newer plan index and the newer timestamp."""
    shutil.copytree(signed, tmp_path / "old")
    shutil.copytree(signed, tmp_path / "new")
    old, new = open_store(str(tmp_path / "old" / "repo")), open_store(str(tmp_path / "new" / "repo"))
    promote(new, PRODUCT, "1.0.0", "stable")
    retire(new, PRODUCT, "1.1.0")
    write_index(new, PRODUCT)
    repository.sign_documents(new, Keyring(tmp_path / "new" / "keys"), PRODUCT)
    origin = open_store(str(tmp_path / "origin"))

    publish(new, [origin], PRODUCT, ["1.0.0"])
    late = publish(old, [origin], PRODUCT, ["1.2.0"]).origins[0]

    assert late.timestamp == "newer-there"
    for key in (layout.channel_key(PRODUCT, "stable"), layout.plan_index_key(PRODUCT),
                layout.metadata_key("timestamp")):
        assert origin.get(key) == new.get(key), key
    assert channel.load(origin, PRODUCT, "stable").serial == 2
    client = signed_player(tmp_path / "origin", root_of(tmp_path / "new"), tmp_path / "data")
    assert resolve_version(client, PRODUCT, "stable") == "1.0.0"


@pytest.fixture
def two_views(published, tmp_path):
    """Two copies of an unsigned repository: ``behind`` has stable serial 1 (-> 1.2.0),
    ``ahead`` has moved it on to serial 2 (-> 1.0.0)."""
    shutil.copytree(published, tmp_path / "behind")
    shutil.copytree(published, tmp_path / "ahead")
    ahead = open_store(str(tmp_path / "ahead"))
    promote(ahead, PRODUCT, "1.0.0", "stable")
    return open_store(str(tmp_path / "behind")), ahead


def test_a_pointer_with_a_lower_serial_never_replaces_the_origins(two_views, tmp_path):
    behind, ahead = two_views
    origin = open_store(str(tmp_path / "origin"))
    publish(ahead, [origin], PRODUCT, ["1.0.0"], channels=["stable"])
    publish(behind, [origin], PRODUCT, ["1.2.0"], channels=["stable"])
    key = layout.channel_key(PRODUCT, "stable")
    assert origin.get(key) == ahead.get(key)
    assert channel.load(origin, PRODUCT, "stable").serial == 2


def test_a_pointer_moved_between_read_and_write_is_read_again_and_kept(two_views, tmp_path):
    """Another publisher writes the newer pointer just after this one read the origin's:
    the swap meets a stale tag, reads again, and leaves the newer pointer there."""
    behind, ahead = two_views
    origin = open_store(str(tmp_path / "origin"))
    key = layout.channel_key(PRODUCT, "stable")
    reads = []

    def racing(read):
        def wrapped(k):
            try:
                return read(k)
            finally:
                if k == key and not reads:
                    reads.append(k)
                    origin.put_if_match(key, ahead.get(key), None)  # the other publisher, after our read

        return wrapped

    origin.get_tagged = racing(origin.get_tagged)
    origin.get = racing(origin.get)
    publish(behind, [origin], PRODUCT, ["1.2.0"], channels=["stable"])
    del origin.get_tagged, origin.get
    assert reads == [key]
    assert origin.get(key) == ahead.get(key)
