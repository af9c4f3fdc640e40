"""The test HTTP origins themselves: static serving, path confinement, ranges, faults."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.testing.faulty_origin import FAULT_KINDS, FaultyOrigin
from pipeline.testing.http_origins import StaticOrigin, parse_range

BIG = bytes(range(256)) * 40  # 10240 bytes
ONE = b"chunk one " * 100
TWO = b"chunk two " * 100
SECRET = b"outside the root\n"


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
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "s").write_bytes(SECRET)
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


def test_keep_alive_and_counters(root):
    with StaticOrigin(root) as origin:
        conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
        try:
            for path in ["/a/big.bin", "/chunks/00/one", "/missing", "/a/big.bin"]:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                assert resp.version == 11 and not resp.will_close
            conn.request("HEAD", "/chunks/00/two")
            conn.getresponse().read()
        finally:
            conn.close()
        assert origin.connections == 1
        assert origin.requests == 5
        assert origin.requests_by_path == {"/a/big.bin": 2, "/chunks/00/one": 1, "/missing": 1, "/chunks/00/two": 1}
        origin.reset_counters()
        assert (origin.requests, origin.requests_by_path, origin.connections) == (0, {}, 0)


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


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/a/../../secret.txt",
        "/a/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/../outside/s",
        "/../etc/passwd",
        "/%2e%2e/x",
        "/./a/big.bin",
        "/a//big.bin",
        "a/big.bin",
        "/a\\big.bin",
    ],
)
def test_traversal_is_404(root, path):
    with StaticOrigin(root) as origin:
        assert request(origin, path)[0] == 404
        assert origin.requests == 1


def test_absolute_path_is_404(root, tmp_path):
    with StaticOrigin(root) as origin:
        assert request(origin, "/" + str(tmp_path / "secret.txt"))[0] == 404
        assert request(origin, "/%2F" + str(tmp_path / "secret.txt").lstrip("/"))[0] == 404


def test_symlinks(root, tmp_path):
    (root / "out_file").symlink_to(tmp_path / "secret.txt")
    (root / "out_dir").symlink_to(tmp_path / "outside")
    (root / "in_file").symlink_to(root / "a" / "big.bin")
    (root / "in_dir").symlink_to("a")
    with StaticOrigin(root) as origin:
        assert request(origin, "/out_file")[0] == 404
        assert request(origin, "/out_dir/s")[0] == 404
        assert request(origin, "/in_file")[::2] == (200, BIG)
        assert request(origin, "/in_dir/big.bin")[::2] == (200, BIG)


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=2-5", 2, 5),
        ("bytes=0-0", 0, 0),
        ("bytes=10000-", 10000, len(BIG) - 1),
        ("bytes=-16", len(BIG) - 16, len(BIG) - 1),
        ("bytes=-99999", 0, len(BIG) - 1),
        ("bytes=100-999999", 100, len(BIG) - 1),
    ],
)
def test_range(root, spec, first, last):
    with StaticOrigin(root) as origin:
        status, headers, body = request(origin, "/a/big.bin", headers={"Range": spec})
        assert status == 206
        assert headers["Content-Range"] == f"bytes {first}-{last}/{len(BIG)}"
        assert headers["Content-Length"] == str(last - first + 1)
        assert body == BIG[first : last + 1]


@pytest.mark.parametrize("spec", [f"bytes={len(BIG)}-", f"bytes={len(BIG) + 5}-{len(BIG) + 9}", "bytes=-0"])
def test_range_unsatisfiable(root, spec):
    with StaticOrigin(root) as origin:
        status, headers, body = request(origin, "/a/big.bin", headers={"Range": spec})
        assert (status, body) == (416, b"")
        assert headers["Content-Range"] == f"bytes */{len(BIG)}"
        assert request(origin, "/empty", headers={"Range": "bytes=0-"})[0] == 416


@pytest.mark.parametrize("spec", ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-", "bytes"])
def test_range_ignored(root, spec):
    with StaticOrigin(root) as origin:
        assert request(origin, "/a/big.bin", headers={"Range": spec})[::2] == (200, BIG)


def test_parse_range():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=3-", 10) == (3, 9)
    assert parse_range("bytes = 3 - 4", 10) == (3, 4)
    assert parse_range("bytes=²-", 10) is None


def test_stop(root):
    origin = StaticOrigin(root)
    conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
    conn.request("GET", "/chunks/00/one")
    assert conn.getresponse().read() == ONE
    origin.stop()
    origin.stop()  # idempotent
    # the open keep-alive connection was dropped, and nothing listens any more
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        conn.request("GET", "/chunks/00/one")
        conn.getresponse().read()
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", origin.port), timeout=1).close()


def test_quiet(root, capfd):
    with FaultyOrigin(root, {"reset": 0.3, "truncate": 0.3, "500": 0.3}) as origin:
        for _ in range(10):
            try:
                request(origin, "/chunks/00/one")
            except (ConnectionError, http.client.HTTPException):
                pass
        request(origin, "/../secret.txt")
        request(origin, "/nope", method="POST")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert origin.errors == []


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


@pytest.mark.parametrize("code", [500, 503])
def test_fault_status(root, code):
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
        assert origin.connections == 2


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


def test_fault_truncate_range(root):
    with FaultyOrigin(root, {"truncate": 1.0}) as origin:
        conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
        try:
            conn.request("GET", "/a/big.bin", headers={"Range": "bytes=100-199"})
            resp = conn.getresponse()
            assert resp.status == 206
            with pytest.raises(http.client.IncompleteRead) as e:
                resp.read()
            assert e.value.partial == BIG[100:150]
        finally:
            conn.close()


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


def test_fault_stall_then_body(root):
    with FaultyOrigin(root, {"stall": 1.0}, stall_seconds=0.2) as origin:
        assert request(origin, "/chunks/00/one", timeout=2)[::2] == (200, ONE)  # late, but whole
        assert origin.fault_counts["stall"] == 1


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


def test_set_faults(root):
    with FaultyOrigin(root) as origin:
        assert request(origin, "/chunks/00/one")[0] == 200
        origin.set_faults({"503": 1.0})
        assert origin.faults == {"503": 1.0}
        assert request(origin, "/chunks/00/one")[0] == 503
        origin.set_faults({})
        assert request(origin, "/chunks/00/one")[0] == 200
        assert origin.fault_counts == {**{k: 0 for k in FAULT_KINDS}, "503": 1}


def test_reproducible(root):
    def statuses(seed):
        with FaultyOrigin(root, {"500": 0.3, "503": 0.3}, seed=seed) as origin:
            conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
            out = []
            try:
                for _ in range(30):
                    conn.request("GET", "/chunks/00/one")
                    resp = conn.getresponse()
                    resp.read()
                    out.append(resp.status)
            finally:
                conn.close()
            return out, dict(origin.fault_counts)

    a, counts = statuses(1)
    assert statuses(1) == (a, counts)
    assert {200, 500, 503} == set(a)
    assert counts["500"] == a.count(500) and counts["503"] == a.count(503)
    assert statuses(2)[0] != a


def test_invalid_faults(root):
    with pytest.raises(ValueError):
        FaultyOrigin(root, {"explode": 0.5})
    with pytest.raises(ValueError):
        FaultyOrigin(root, {"reset": 0.6, "500": 0.6})
    with pytest.raises(ValueError):
        FaultyOrigin(root, {"reset": -0.1})
    with FaultyOrigin(root) as origin:
        with pytest.raises(ValueError):
            origin.set_faults({"stall": 2})
        assert origin.faults == {}
