"""schemathesis over the tasks' routes, as a signed-in user: no server error, and the
migrations give the models' schema exactly."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import database_in, service
from pipeline.service.tasks.models import Base
from pipeline.service.tasks.repository import Repository


def test_schemathesis_finds_no_server_error_in_the_task_routes(published, signer, database, tmp_path):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.fail("schemathesis is in depot's test extra: pip install -e '.[test]'")
    token = signer.token("fuzzer", [PRODUCT], ttl=3600)
    with service(published, signer, database, max_active_tasks=1000) as url:
        p = subprocess.run([st, "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
                            "--include-path-regex", "^/api/v1/download/(tasks|updates/initiate|integrity)",
                            "-H", f"Authorization: Bearer {token}", "--max-examples", "25", "--seed", "1",
                            "--no-color"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "/api/v1/download/tasks/queue/reorder" in p.stdout  # the routes were reached


def test_the_migrations_make_the_models_schema(tmp_path):
    repository = Repository(database_in(tmp_path))
    repository.migrate()
    with repository.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    repository.close()
