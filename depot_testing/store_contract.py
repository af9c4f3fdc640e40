"""The store contract, as test classes every backend's tests subclass (see storage.base for
the promises). A backend's own test file only says how to make one of its stores:

    class TestLocalStore(WriteStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return open_store(str(tmp_path / "repo"))

``ReadStoreContract`` is for read-only stores: its subclass gives ``open_with``, a fixture
returning a function that serves a dict of objects and returns a store reading them.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from pipeline.errors import InvalidKey, NotFound
from pipeline.storage import ReadStore, WriteStore, open_store

OBJECTS = {"a/b/obj": b"first", "e/empty": b"", "chunks/ab/" + "ab" * 32: bytes(range(256)) * 64}
BAD_KEYS = ["", "/abs", "a/../b", "a//b", "./a", "a/.", "a b"]
RACERS = 4


class ReadStoreContract:
    @pytest.fixture
    def open_with(self):
        """A function: objects (key -> bytes) -> a store that reads them."""
        raise NotImplementedError

    @pytest.fixture
    def reader(self, open_with) -> ReadStore:
        return open_with(OBJECTS)

    def test_get_returns_the_whole_object(self, reader):
        for key, data in OBJECTS.items():
            assert reader.get(key) == data
            assert reader.has(key)
            assert reader.size(key) == len(data)

    def test_a_missing_key_is_not_found(self, reader):
        with pytest.raises(NotFound):
            reader.get("chunks/abcd/missing")
        assert not reader.has("chunks/abcd/missing")
        with pytest.raises(NotFound):
            reader.size("chunks/abcd/missing")

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_invalid_keys_are_refused_on_read(self, reader, key):
        with pytest.raises(InvalidKey):
            reader.get(key)

    def test_url_of_names_the_key_under_the_store(self, reader):
        assert reader.url_of("a/b/obj") == reader.url + "/a/b/obj"


def _race_put_if_absent(location, key: str, data: bytes, barrier, results) -> None:
    store = open_store(location)
    barrier.wait()
    results.put((data, store.put_if_absent(key, data)))


def _race_put_if_match(location, key: str, data: bytes, tag: str, barrier, results) -> None:
    store = open_store(location)
    barrier.wait()
    results.put((data, store.put_if_match(key, data, tag)))


class WriteStoreContract(ReadStoreContract):
    shared_between_processes = True  # False for a store that lives in one process's memory

    @pytest.fixture
    def store(self) -> WriteStore:
        """A fresh, empty store of the backend under test."""
        raise NotImplementedError

    @pytest.fixture
    def open_with(self, store):
        def fill(objects: dict[str, bytes]) -> WriteStore:
            for key, data in objects.items():
                store.put(key, data)
            return store

        return fill

    def test_put_if_absent_writes_once(self, store):
        assert store.put_if_absent("a/b/obj", b"first") is True
        assert store.put_if_absent("a/b/obj", b"second") is False
        assert store.get("a/b/obj") == b"first"
        assert store.size("a/b/obj") == 5

    def test_put_replaces(self, store):
        store.put("cfg/x.json", b"1")
        store.put("cfg/x.json", b"22")
        assert store.get("cfg/x.json") == b"22"

    def test_list_is_sorted_and_scoped_to_prefix(self, store):
        for key in ["p/b/2", "p/a/1", "p/c", "q/1"]:
            store.put_if_absent(key, key.encode())
        assert list(store.list("p/")) == ["p/a/1", "p/b/2", "p/c"]
        assert list(store.list("p/a/")) == ["p/a/1"]
        assert list(store.list("nothing/")) == []
        assert list(store.list()) == ["p/a/1", "p/b/2", "p/c", "q/1"]

    def test_delete_removes_and_tolerates_missing(self, store):
        store.put("d/x", b"x")
        store.delete("d/x")
        assert not store.has("d/x")
        store.delete("d/x")

    def test_writer_streams_and_publishes_on_success(self, store):
        with store.writer("big/pack") as f:
            for i in range(8):
                f.write(bytes([i]) * 100_000)
        data = store.get("big/pack")
        assert len(data) == 800_000 and data[100_000] == 1 and data[700_000:700_003] == b"\x07\x07\x07"

    def test_writer_publishes_nothing_when_the_block_fails(self, store):
        with pytest.raises(RuntimeError):
            with store.writer("big/failed") as f:
                f.write(b"partial" * 1000)
                raise RuntimeError("source broke")
        assert not store.has("big/failed")
        assert list(store.list("big/")) == []

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_invalid_keys_are_refused_on_write(self, store, key):
        with pytest.raises(InvalidKey):
            store.put_if_absent(key, b"x")

    def test_put_if_match_swaps_only_the_version_it_read(self, store):
        assert store.put_if_match("ch/stable.json", b"v1", None) is True
        assert store.put_if_match("ch/stable.json", b"v1 again", None) is False
        first = store.get_tagged("ch/stable.json")
        assert first.data == b"v1"
        assert store.put_if_match("ch/stable.json", b"v2", first.tag) is True
        assert store.put_if_match("ch/stable.json", b"v3", first.tag) is False  # stale: v2 is there now
        second = store.get_tagged("ch/stable.json")
        assert second.data == b"v2" and second.tag != first.tag
        assert store.put_if_match("ch/gone.json", b"x", first.tag) is False  # no object to match
        assert not store.has("ch/gone.json")
        with pytest.raises(NotFound):
            store.get_tagged("ch/gone.json")

    def test_a_stale_tag_is_refused_even_when_the_bytes_are_there(self, store):
        store.put_if_match("ch/same.json", b"v0", None)
        stale = store.get_tagged("ch/same.json").tag
        assert store.put_if_match("ch/same.json", b"v1", stale) is True
        assert store.put_if_match("ch/same.json", b"v1", stale) is False  # v1 is there, but not by this call
        assert store.get("ch/same.json") == b"v1"

    def test_scan_reports_sizes_and_ages(self, store):
        before = time.time()
        store.put("s/a", b"12345")
        store.put("s/b/c", b"")
        found = list(store.scan("s/"))
        assert [(o.key, o.size, o.temporary) for o in found] == [("s/a", 5, False), ("s/b/c", 0, False)]
        assert all(before - 5 <= o.modified <= time.time() + 5 for o in found)

    def test_touch_makes_a_reused_object_new_and_prune_spares_it(self, store):
        """What keeps gc from a chunk a build found: touch after gc listed it, and gc's
        prune of that listing leaves it."""
        store.put("t/chunk", b"reused bytes")
        listed = store.touch("t/chunk", older_than=3600)  # young: nothing to do
        assert listed == len(b"reused bytes")
        [before] = list(store.scan("t/"))
        time.sleep(1.1)  # object stores keep whole seconds
        gc_listed_at = time.time()
        assert store.touch("t/chunk") == len(b"reused bytes")
        [after] = list(store.scan("t/"))
        assert after.modified > before.modified and store.get("t/chunk") == b"reused bytes"
        assert store.prune("t/chunk", written_before=before.modified + 1) is False
        assert store.has("t/chunk")
        assert store.prune("t/chunk", written_before=gc_listed_at + 3600) is True
        assert not store.has("t/chunk")
        assert store.prune("t/chunk", written_before=gc_listed_at + 3600) is False
        with pytest.raises(NotFound):
            store.touch("t/chunk")

    def test_racing_threads_exactly_one_creates(self, store):
        barrier = threading.Barrier(RACERS)
        results: list[tuple[bytes, bool]] = []

        def race(i: int) -> None:
            data = f"writer {i}".encode()
            barrier.wait()
            results.append((data, store.put_if_absent("race/obj", data)))

        _run_threads(race)
        winners = [data for data, won in results if won]
        assert len(winners) == 1 and store.get("race/obj") == winners[0]

    @pytest.mark.parametrize("same_bytes", [False, True], ids=["different-bytes", "identical-bytes"])
    def test_racing_threads_exactly_one_swaps(self, store, same_bytes):
        store.put_if_match("race/ptr", b"v0", None)
        tag = store.get_tagged("race/ptr").tag
        barrier = threading.Barrier(RACERS)
        results: list[tuple[bytes, bool]] = []

        def race(i: int) -> None:
            data = b"v1" if same_bytes else f"v1 from {i}".encode()
            barrier.wait()
            results.append((data, store.put_if_match("race/ptr", data, tag)))

        _run_threads(race)
        winners = [data for data, won in results if won]
        assert len(results) == RACERS and len(winners) == 1 and store.get("race/ptr") == winners[0]

    def test_racing_threads_of_identical_bytes_exactly_one_creates(self, store):
        barrier = threading.Barrier(RACERS)
        results: list[bool] = []

        def race(i: int) -> None:
            barrier.wait()
            results.append(store.put_if_absent("race/same", b"same bytes"))

        _run_threads(race)
        assert sorted(results) == [False] * (RACERS - 1) + [True] and store.get("race/same") == b"same bytes"

    def test_racing_processes_exactly_one_creates(self, store):
        if not self.shared_between_processes:
            pytest.skip("this store lives in one process")
        results = _run_processes(_race_put_if_absent, lambda i: (store.location, "race/obj", f"process {i}".encode()))
        winners = [data for data, won in results if won]
        assert len(winners) == 1 and store.get("race/obj") == winners[0]

    @pytest.mark.parametrize("same_bytes", [False, True], ids=["different-bytes", "identical-bytes"])
    def test_racing_processes_exactly_one_swaps(self, store, same_bytes):
        if not self.shared_between_processes:
            pytest.skip("this store lives in one process")
        store.put_if_match("race/ptr", b"v0", None)
        tag = store.get_tagged("race/ptr").tag
        results = _run_processes(_race_put_if_match, lambda i: (
            store.location, "race/ptr", b"v1" if same_bytes else f"v1 from {i}".encode(), tag))
        winners = [data for data, won in results if won]
        assert len(winners) == 1 and store.get("race/ptr") == winners[0]


def _run_threads(fn) -> None:
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _run_processes(fn, args_of) -> list[tuple[bytes, bool]]:
    """``fn(*args_of(i), barrier, results)`` in RACERS fresh processes released together."""
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter, like a second publisher
    barrier = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args_of(i), barrier, results)) for i in range(RACERS)]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return out
