"""Download tasks under test: the fixture product published, signed, to an origin
directory; a token signer (depot_testing/tasks.py has the service and the player's calls)."""

from __future__ import annotations

import pytest

from depot_testing.fixtures import PRODUCT, signed_repository
from depot_testing.tasks import VERSIONS, Signer
from pipeline import layout
from pipeline.publish.publish import publish
from pipeline.storage import open_store


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> dict:
    """The fixture product's three versions, signed, published to an origin directory
    (stable -> 1.2.0)."""
    base = signed_repository(tmp_path_factory.mktemp("tasks"), versions=VERSIONS)
    repo = open_store(str(base / "repo"))
    origin = base / "origin"
    publish(repo, [open_store(str(origin))], PRODUCT, list(VERSIONS), channels=["stable"])
    root = (base / "repo" / layout.metadata_key("root", 1)).read_bytes()
    return {"base": base, "repo": repo, "origin": origin, "root": root}


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer()
