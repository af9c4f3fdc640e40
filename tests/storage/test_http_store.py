"""The read contract on an HTTP origin: a real server on loopback serving a directory. An
HTTP origin is a ReadStore and nothing more: it has no way to write."""

import pytest

from pipeline.storage import ReadStore, WriteStore, open_origin
from depot_testing.http_origins import StaticOrigin
from depot_testing.store_contract import ReadStoreContract


class TestHttpStore(ReadStoreContract):
    @pytest.fixture
    def open_with(self, tmp_path):
        servers = []

        def serve(objects: dict[str, bytes]) -> ReadStore:
            for key, data in objects.items():
                (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / key).write_bytes(data)
            servers.append(StaticOrigin(tmp_path))
            return open_origin(servers[-1].url)

        yield serve
        for s in servers:
            s.stop()


def test_an_http_origin_is_read_only_by_type(tmp_path):
    with StaticOrigin(tmp_path) as origin:
        store = open_origin(origin.url)
        assert isinstance(store, ReadStore) and not isinstance(store, WriteStore)
        assert not hasattr(store, "put_if_absent") and not hasattr(store, "delete")


def test_an_idle_connection_the_server_closed_is_left_for_a_new_one():
    """A kept-alive connection the server has closed since (its idle timeout) is not used
    for the next request: that request would fail, and the store never sends one twice."""
    import socket
    import threading

    from pipeline.storage.location import Location

    body = b"0123456789"
    closed = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve() -> None:
        for _ in range(2):  # each connection answers one request, then the server closes it
            conn, _ = listener.accept()
            accepted.append(conn)
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            closed.set()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        store = open_origin(Location(f"http://127.0.0.1:{listener.getsockname()[1]}/origin"))
        assert store.get("chunks/00/one") == body
        assert closed.wait(10)
        assert store.get("chunks/00/one") == body
        assert len(accepted) == 2
    finally:
        listener.close()
        server.join(10)


@pytest.mark.parametrize("status, error, message", [
    (404, "NotFound", "https://cdn.example/k: not found"),
    (503, "StoreUnavailable", "https://cdn.example/k: HTTP 503"),
    (302, "StoreUnavailable", "https://cdn.example/k: HTTP 302"),
])
def test_one_reading_of_http_statuses(status, error, message):
    """The HTTP origin and the lookup service's CDN links read statuses alike."""
    from pipeline import errors
    from pipeline.storage.translate import check_status

    check_status(200, "https://cdn.example/k")
    with pytest.raises(getattr(errors, error)) as raised:
        check_status(status, "https://cdn.example/k")
    assert type(raised.value) is getattr(errors, error) and str(raised.value) == message
