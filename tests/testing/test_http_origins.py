"""The test HTTP origins, where other tests rely on them: what the static origin serves,
its request counters (install tests count requests by path), and that each fault the
client tests inject happens as named."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from depot_testing.faulty_origin import FaultyOrigin
from depot_testing.http_origins import StaticOrigin

BIG = bytes(range(256)) * 40  # 10240 bytes
ONE = b"chunk one " * 100
TWO = b"chunk two " * 100


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "a").mkdir(parents=True)
    (r / "a" / "big.bin").write_bytes(BIG)
    (r / "chunks" / "00").mkdir(parents=True)
    (r / "chunks" / "00" / "one").write_bytes(ONE)
    (r / "chunks" / "00" / "two").write_bytes(TWO)
    (r / "manifests").mkdir()
    (r / "manifests" / "m.json").write_bytes(b'{"files": []}\n')
    (r / "empty").write_bytes(b"")
    return r


def request(origin: StaticOrigin, path: str, method: str = "GET", headers=None, timeout: float = 5.0):
    """(status, headers, body) of one request on a fresh connection, the target sent verbatim."""
    conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def urlopen_error(url: str) -> int:
    """The status of the HTTPError that urlopen raises for ``url``."""
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=5)
    e.value.close()
    return e.value.code


# -- static serving --------------------------------------------------------------------------


def test_get(root):
    with StaticOrigin(root) as origin:
        assert origin.url == f"http://127.0.0.1:{origin.port}"
        assert not origin.url.endswith("/")
        with urllib.request.urlopen(origin.url + "/a/big.bin", timeout=5) as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(len(BIG))
            assert r.headers["Accept-Ranges"] == "bytes"
            assert r.read() == BIG
        assert request(origin, "/empty")[::2] == (200, b"")
        assert request(origin, "/a/big.bin?x=1")[2] == BIG
        assert origin.errors == []


def test_head(root):
    with StaticOrigin(root) as origin:
        status, headers, body = request(origin, "/a/big.bin", method="HEAD")
        assert (status, body) == (200, b"")
        assert headers["Content-Length"] == str(len(BIG))
        req = urllib.request.Request(origin.url + "/chunks/00/one", method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.headers["Content-Length"] == str(len(ONE))
            assert r.read() == b""


def test_counters(root):
    """Install tests count requests by path, over one kept-alive connection or many."""
    with StaticOrigin(root) as origin:
        conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
        try:
            for path in ["/a/big.bin", "/chunks/00/one", "/missing", "/a/big.bin"]:
                conn.request("GET", path)
                conn.getresponse().read()
            conn.request("HEAD", "/chunks/00/two")
            conn.getresponse().read()
        finally:
            conn.close()
        assert origin.requests == 5
        assert origin.requests_by_path == {"/a/big.bin": 2, "/chunks/00/one": 1, "/missing": 1, "/chunks/00/two": 1}


def test_counters_thread_safe(root):
    with StaticOrigin(root) as origin:

        def worker():
            for _ in range(25):
                with urllib.request.urlopen(origin.url + "/chunks/00/one", timeout=5) as r:
                    assert r.read() == ONE

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert origin.requests == 200
        assert origin.requests_by_path == {"/chunks/00/one": 200}
        assert origin.errors == []


def test_missing_is_404(root):
    with StaticOrigin(root) as origin:
        for path in ["/nope", "/a/nope", "/a", "/a/", "/", "/a/big.bin/x"]:
            status, headers, _ = request(origin, path)
            assert status == 404, path
            assert "Content-Length" in headers
        assert urlopen_error(origin.url + "/nope") == 404


# -- faults ----------------------------------------------------------------------------------


def test_fault_reset(root):
    with FaultyOrigin(root, {"reset": 1.0}) as origin:
        with pytest.raises(ConnectionResetError):  # http.client.RemoteDisconnected is one too
            request(origin, "/chunks/00/one")
        with pytest.raises(ConnectionResetError):
            urllib.request.urlopen(origin.url + "/chunks/00/one", timeout=5)
        assert origin.fault_counts["reset"] == 2
        assert origin.requests == 2
        assert origin.errors == []


def test_fault_status(root):
    code = 500
    with FaultyOrigin(root, {str(code): 1.0}) as origin:
        conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
        try:
            for _ in range(2):  # the connection stays usable
                conn.request("GET", "/chunks/00/one")
                resp = conn.getresponse()
                assert resp.status == code
                assert resp.read()
        finally:
            conn.close()
        assert urlopen_error(origin.url + "/chunks/00/one") == code
        assert origin.fault_counts[str(code)] == 3


def test_fault_truncate(root):
    with FaultyOrigin(root, {"truncate": 1.0}) as origin:
        conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
        try:
            conn.request("GET", "/chunks/00/one")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.headers["Content-Length"] == str(len(ONE))
            with pytest.raises(http.client.IncompleteRead) as e:
                resp.read()
            assert e.value.partial == ONE[: len(ONE) // 2]
            assert e.value.expected == len(ONE) - len(ONE) // 2
        finally:
            conn.close()
        with urllib.request.urlopen(origin.url + "/a/big.bin", timeout=5) as r:
            with pytest.raises(http.client.IncompleteRead):
                r.read()
        # HEAD has no body to cut: served normally, not counted
        assert request(origin, "/a/big.bin", method="HEAD")[0] == 200
        assert origin.fault_counts["truncate"] == 2


def test_fault_corrupt(root):
    with FaultyOrigin(root, {"corrupt": 1.0}) as origin:
        status, headers, body = request(origin, "/a/big.bin")
        assert status == 200
        assert len(body) == len(BIG) == int(headers["Content-Length"])
        assert body != BIG
        assert sum(a != b for a, b in zip(body, BIG)) == 1
        assert origin.fault_counts["corrupt"] == 1


def test_fault_stall(root):
    with FaultyOrigin(root, {"stall": 1.0}, stall_seconds=2) as origin:
        conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=0.3)
        try:
            conn.request("GET", "/chunks/00/one")
            resp = conn.getresponse()  # the headers come at once
            assert resp.status == 200
            with pytest.raises(socket.timeout):
                resp.read()
        finally:
            conn.close()
        with pytest.raises(socket.timeout):
            with urllib.request.urlopen(origin.url + "/a/big.bin", timeout=0.3) as r:
                r.read()
        assert origin.fault_counts["stall"] == 2


def test_fault_wrong(root):
    with FaultyOrigin(root, {"wrong": 1.0}) as origin:
        status, headers, body = request(origin, "/chunks/00/one")
        assert (status, body) == (200, TWO)
        assert headers["Content-Length"] == str(len(TWO))
        assert request(origin, "/chunks/00/two")[::2] == (200, ONE)
        # alone in its directory: another file under root
        status, _, body = request(origin, "/a/big.bin")
        assert status == 200 and body != BIG
        # nothing to swap for a missing file
        assert request(origin, "/chunks/00/nope")[0] == 404
        assert origin.fault_counts["wrong"] == 3


def test_fail_all(root):
    with FaultyOrigin(root) as origin:
        assert request(origin, "/manifests/m.json")[0] == 200
        origin.fail_all = True
        for path in ["/manifests/m.json", "/chunks/00/one", "/nope"]:
            with pytest.raises(ConnectionResetError):
                request(origin, path)
        origin.fail_all = False
        assert request(origin, "/chunks/00/one")[::2] == (200, ONE)
        assert origin.fault_counts["reset"] == 3
        assert origin.requests == 5


def test_only_prefix(root):
    with FaultyOrigin(root, {"500": 1.0}, only_prefix="/chunks/") as origin:
        assert request(origin, "/chunks/00/one")[0] == 500
        assert request(origin, "/manifests/m.json")[::2] == (200, b'{"files": []}\n')
        assert origin.fault_counts["500"] == 1
