"""schemathesis over the tasks' routes, as a signed-in user: no server error; the
migrations give the models' schema exactly; a database or key the service cannot use is
a clear error."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from helpers import DEPOT, ROOT
from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import database_in, service
from pipeline.errors import InvalidArgument, StoreUnavailable
from pipeline.service.tasks.models import Base
from pipeline.service.tasks.repository import Repository


# On PostgreSQL only: the routes are the same code on both databases, and PostgreSQL is the
# strict one (types, lengths, integer ranges), where a fuzzed value can reach a server error.
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_schemathesis_finds_no_server_error_in_the_task_routes(published, signer, database, tmp_path):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.fail("schemathesis is in depot's test extra: pip install -e '.[test]'")
    token = signer.token("fuzzer", [PRODUCT], ttl=3600)
    with service(published, signer, database, max_active_tasks=1000) as url:
        p = subprocess.run([st, "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
                            "--include-path-regex", "^/api/v1/download/(tasks|updates/initiate|integrity)",
                            "-H", f"Authorization: Bearer {token}", "--max-examples", "15", "--seed", "1",
                            "--no-color"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "/api/v1/download/tasks/queue/reorder" in p.stdout  # the routes were reached


def test_the_migrations_make_the_models_schema(tmp_path):
    repository = Repository(database_in(tmp_path))
    repository.migrate()
    with repository.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    repository.close()


def test_a_database_the_service_cannot_use_is_a_clear_error(published, signer, tmp_path):
    with pytest.raises(InvalidArgument, match="SQLite or PostgreSQL"):
        Repository("mysql://db.example/tasks")
    with pytest.raises(StoreUnavailable, match="the tasks' database: unable to open database file"):
        Repository(f"sqlite:///{tmp_path}/no/such/dir/tasks.db").migrate()
    key = tmp_path / "key.pem"
    key.write_bytes(signer.pem)
    root = tmp_path / "root.json"
    root.write_bytes(published["root"])
    p = subprocess.run(DEPOT + ["serve", "--origin", str(published["origin"]), "--trust", str(root),
                                "--link-secret", "s", "--jwt-key", str(key), "--tasks-db", "mysql://db.example/t",
                                "--port", "0"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and "INVALID_ARGUMENT" in p.stderr and "mysql://db.example/t" in p.stderr, p.stderr
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    p = subprocess.run(DEPOT + ["serve", "--origin", str(published["origin"]), "--trust", str(root),
                                "--link-secret", "s", "--jwt-key", str(not_a_key), "--tasks-db",
                                str(tmp_path / "t.db"), "--port", "0"], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert p.returncode == 2 and "JWT key 1: not a PEM public key" in p.stderr, p.stderr
