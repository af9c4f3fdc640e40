"""The store contract on fsspec's in-process memory filesystem."""

import uuid

import pytest

from pipeline.storage import open_store
from depot_testing.store_contract import WriteStoreContract


class TestMemoryStore(WriteStoreContract):
    shared_between_processes = False

    @pytest.fixture
    def store(self):
        return open_store(f"memory://depot-test-{uuid.uuid4().hex}")
