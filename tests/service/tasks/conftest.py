"""Download tasks under test: the fixture product published, signed, to an origin
directory; a token signer; the tasks' database, SQLite and a real PostgreSQL (the same
tests on each). depot_testing/tasks.py has the service and the player's calls."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from depot_testing.fixtures import PRODUCT, signed_repository
from depot_testing.tasks import VERSIONS, Signer, database_in, service
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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory) -> str:
    """A new, empty database for a test module: a SQLite file, or one on the session's PostgreSQL."""
    if request.param == "sqlite":
        return database_in(tmp_path_factory.mktemp("db"))
    from depot_testing.databases import create_database

    return create_database(request.getfixturevalue("postgres_server"), f"tasks_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def tasks_url(published, signer, tmp_path_factory) -> Iterator[str]:
    """The service with tasks on (SQLite, the default settings) for a test module whose
    tests each call it as users of their own: its URL."""
    with service(published, signer, database_in(tmp_path_factory.mktemp("db"))) as url:
        yield url
