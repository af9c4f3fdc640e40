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
