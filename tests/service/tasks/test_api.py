"""The tasks API over a real uvicorn (SQLite and PostgreSQL): the documents' bodies, statuses and codes;
a task's items are the signed manifest's files; one user never sees another's tasks."""

from __future__ import annotations

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Client, code, config, database_in, service
from pipeline.formats import manifest as manifest_doc
from pipeline.service.app import create_app
from pipeline.service.tasks.queue import NewItem
from pipeline.service.tasks.settings import TaskSettings


@pytest.fixture(scope="module")
def url(published, signer, database):
    with service(published, signer, database, max_active_tasks=3) as url:
        yield url


def test_a_new_task_is_queued_with_the_manifests_files(url, signer, published):
    player = Client(url, signer.token("player-new", [PRODUCT]))
    status, body, _ = player.create("/games/new", "1.1.0")
    assert status == 202
    task = body["data"]
    a = task["attributes"]
    manifest = manifest_doc.load(published["repo"], PRODUCT, "1.1.0")
    assert (task["type"], a["taskType"], a["productId"], a["versionId"], a["targetPath"], a["status"],
            a["priority"], a["queuePosition"], a["downloadedBytes"], a["totalProgressPercentage"],
            a["errorDetails"]) == ("downloadTask", "download", PRODUCT, "1.1.0", "/games/new", "queued", 0, 0, 0,
                                   0.0, None)
    assert a["totalSizeBytes"] == sum(f.size for f in manifest.files)
    assert body["meta"] == {"created": True}
    assert task["links"]["manifest"].startswith("http://cdn.example/depot/products/" + PRODUCT)
    status, body, _ = player.call("GET", f"/tasks/{task['id']}")
    assert status == 200
    items = body["data"]["attributes"]["items"]
    assert [(i["relativePath"], i["totalFileSizeBytes"], i["expectedHashSha256"], i["status"], i["downloadedBytes"])
            for i in items] == [(f.path, f.size, f.hash_sha256, "pending", 0) for f in manifest.files]


def test_the_same_download_asked_again_joins_the_task(url, signer):
    player = Client(url, signer.token("player-join", [PRODUCT]))
    status, first, _ = player.create("/games/join")
    status_again, again, _ = player.create("/games/join")
    assert (status, status_again) == (202, 200)
    assert again["data"]["id"] == first["data"]["id"] and again["meta"] == {"created": False}


def test_another_users_task_is_not_found(url, signer):
    owner = Client(url, signer.token("owner", [PRODUCT]))
    _, body, _ = owner.create("/games/mine")
    task_id = body["data"]["id"]
    other = Client(url, signer.token("other", [PRODUCT]))
    for method, path in [("GET", f"/tasks/{task_id}"), ("POST", f"/tasks/{task_id}/pause"),
                         ("POST", f"/tasks/{task_id}/resume"), ("DELETE", f"/tasks/{task_id}")]:
        status, answer, _ = other.call(method, path)
        assert (status, code(answer)) == (404, "NOT_FOUND"), (method, path)
    status, answer, _ = other.report(task_id)
    assert (status, code(answer)) == (404, "NOT_FOUND")
    status, answer, _ = owner.call("GET", f"/tasks/{task_id}")
    assert status == 200 and answer["data"]["attributes"]["status"] == "queued"


def test_past_the_limit_the_queue_is_full(url, signer):
    player = Client(url, signer.token("player-full", [PRODUCT]))
    for n in range(3):
        status, _, _ = player.create(f"/games/full-{n}")
        assert status == 202
    status, body, _ = player.create("/games/full-3")
    assert (status, code(body)) == (409, "DOWNLOAD_QUEUE_FULL")
    status, body, _ = player.call("GET", "/tasks/queue")
    assert [t["attributes"]["targetPath"] for t in body["data"]] == [f"/games/full-{n}" for n in range(3)]


def test_a_task_is_shown_when_its_version_has_left_the_origins(published, signer, tmp_path):
    app = create_app(config(published, TaskSettings(database_in(tmp_path), jwt_keys=(signer.pem,),
                                                     max_concurrent_downloads=2)))
    gone, _ = app.state.tasks.queue.create("keeper", "download", PRODUCT, "0.9.0", "/games/old", 0,
                                           [NewItem("a.bin", 5, "0" * 64)])
    with uvicorn_server(app) as url:
        player = Client(url, signer.token("keeper", [PRODUCT]))
        status, body, _ = player.call("GET", f"/tasks/{gone.id}")
        assert status == 200
        assert body["data"]["links"] == {"self": f"/api/v1/download/tasks/{gone.id}"}
        assert [i["relativePath"] for i in body["data"]["attributes"]["items"]] == ["a.bin"]
        task = player.create("/games/done")[1]["data"]["id"]
        player.report(task, status="completed")
        assert player.call("GET", f"/tasks/{task}")[1]["data"]["links"] == {"self": f"/api/v1/download/tasks/{task}"}
