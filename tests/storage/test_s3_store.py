"""The store contract on S3: moto's server over real HTTP on 127.0.0.1. Racing writers in
separate processes prove that create-if-absent and compare-and-swap are the server's
conditional writes, not a check followed by a write."""

import pytest

from pipeline.storage import open_store
from pipeline.testing.store_contract import WriteStoreContract


class TestS3Store(WriteStoreContract):
    @pytest.fixture
    def store(self, s3, s3_bucket):
        return open_store(s3.resolve(f"{s3_bucket}/some/prefix"))
