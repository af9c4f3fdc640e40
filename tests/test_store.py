"""The Store contract, run against every backend: memory, local disk, S3 (moto server)."""

from __future__ import annotations

import os
import uuid

import pytest

from pipeline.errors import InvalidKey, NotFound
from pipeline.store import FsspecStore


@pytest.fixture(params=["memory", "local", "s3"])
def store(request, tmp_path):
    if request.param == "memory":
        return FsspecStore(f"memory://depot-test-{uuid.uuid4().hex}")
    if request.param == "local":
        return FsspecStore(str(tmp_path / "repo"))
    bucket = request.getfixturevalue("s3_bucket")
    return FsspecStore(f"{bucket}/some/prefix")


def test_get_of_missing_key_is_not_found(store):
    with pytest.raises(NotFound):
        store.get("chunks/abcd/missing")
    assert not store.has("chunks/abcd/missing")
    with pytest.raises(NotFound):
        store.size("chunks/abcd/missing")


def test_put_if_absent_writes_once(store):
    assert store.put("a/b/obj", b"first") is True
    assert store.put("a/b/obj", b"second") is False
    assert store.get("a/b/obj") == b"first"
    assert store.has("a/b/obj")
    assert store.size("a/b/obj") == 5


def test_put_overwrite_replaces(store):
    store.put("cfg/x.json", b"1")
    assert store.put("cfg/x.json", b"22", overwrite=True) is True
    assert store.get("cfg/x.json") == b"22"


def test_empty_object_round_trips(store):
    store.put("e/empty", b"")
    assert store.get("e/empty") == b""
    assert store.size("e/empty") == 0


def test_list_is_sorted_and_scoped_to_prefix(store):
    for key in ["p/b/2", "p/a/1", "p/c", "q/1"]:
        store.put(key, key.encode())
    assert list(store.list("p/")) == ["p/a/1", "p/b/2", "p/c"]
    assert list(store.list("p/a/")) == ["p/a/1"]
    assert list(store.list("nothing/")) == []
    assert list(store.list()) == ["p/a/1", "p/b/2", "p/c", "q/1"]


def test_delete_removes_and_tolerates_missing(store):
    store.put("d/x", b"x")
    store.delete("d/x")
    assert not store.has("d/x")
    store.delete("d/x")


def test_writer_streams_and_publishes_on_success(store):
    with store.writer("big/pack") as f:
        for i in range(8):
            f.write(bytes([i]) * 100_000)
    data = store.get("big/pack")
    assert len(data) == 800_000 and data[100_000] == 1
    with store.open("big/pack") as f:
        f.seek(700_000)
        assert f.read(3) == b"\x07\x07\x07"


def test_writer_publishes_nothing_when_the_block_fails(store):
    with pytest.raises(RuntimeError):
        with store.writer("big/failed") as f:
            f.write(b"partial" * 1000)
            raise RuntimeError("source broke")
    assert not store.has("big/failed")
    assert list(store.list("big/")) == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/.", "a b"])
def test_invalid_keys_are_refused(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")


def test_local_writes_leave_no_temporary_files(tmp_path):
    store = FsspecStore(str(tmp_path / "repo"))
    store.put("c/1", b"1")
    store.put("c/1", b"1")
    with store.writer("c/2") as f:
        f.write(b"2")
    assert sorted(os.listdir(tmp_path / "repo" / "c")) == ["1", "2"]
