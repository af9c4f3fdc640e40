"""The store contract on a local directory, and what only local writes promise."""

import os

import pytest

from pipeline.storage import local_store, open_store
from depot_testing.store_contract import WriteStoreContract


class TestLocalStore(WriteStoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return open_store(str(tmp_path / "repo"))


class TestLocalStoreWithNamedTemporaries(WriteStoreContract):
    """Where unnamed files (``O_TMPFILE``) are missing, create-if-absent links a named
    temporary: the same contract."""

    @pytest.fixture
    def store(self, tmp_path, monkeypatch):
        monkeypatch.setattr(local_store, "_UNNAMED", False)
        return open_store(str(tmp_path / "repo"))


def test_local_writes_leave_no_temporary_files(tmp_path):
    store = open_store(str(tmp_path / "repo"))
    store.put_if_absent("c/1", b"1")
    store.put_if_absent("c/1", b"1")
    store.put_if_match("c/3", b"3", None)
    store.put_if_match("c/3", b"33", store.get_tagged("c/3").tag)
    with store.writer("c/2") as f:
        f.write(b"2")
    assert sorted(os.listdir(tmp_path / "repo" / "c")) == ["1", "2", "3"]


def test_temporaries_are_not_keys_but_gc_sees_them(tmp_path):
    store = open_store(str(tmp_path / "repo"))
    store.put("c/1", b"1")
    (tmp_path / "repo" / "c" / ".1.dead.tmp").write_bytes(b"left by a killed write")
    assert list(store.list("c/")) == ["c/1"]
    assert [(o.key, o.temporary) for o in store.scan("c/")] == [("c/.1.dead.tmp", True), ("c/1", False)]


def test_a_local_listing_needs_no_fsspec_and_proves_no_bytes(tmp_path):
    """What a publish to a directory lists, without importing fsspec; local files carry no
    digest, so a listing never proves bytes (the caller reads them)."""
    import subprocess
    import sys

    from helpers import ROOT

    code = ("import sys; from pipeline.storage import open_store; s = open_store(sys.argv[1]); s.put('a/b', b'x'); "
            "[o] = s.scan('a/'); print(o.key, o.size, o.temporary, o.holds(b'x'), 'fsspec' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert (p.stdout, p.stderr) == ("a/b 1 False False False\n", "")
