"""Progress reports taken in memory and written behind (pipeline/service/tasks/running.py),
on SQLite and a real PostgreSQL: a report that only moves bytes costs no statement and is
answered as before; the database gets the exact bytes at the next write, or first thing in
the next change of the user's tasks; a crash loses at most the reports not written yet,
never a task or a status; a write never undoes a newer change; a change made on another
instance (on PostgreSQL) reaches this one's answers when it reads its tasks again."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from sqlalchemy import event, select

from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Client, code, config
from pipeline.service.app import create_app
from pipeline.service.tasks.models import DownloadItem, DownloadTask
from pipeline.service.tasks.repository import Repository
from pipeline.service.tasks.settings import TaskSettings

NEVER = 3600.0  # the writer's interval: only the test (or a change, or a stop) writes


@contextlib.contextmanager
def instance(published, signer, database: str) -> Iterator[tuple[str, object]]:
    """One service on ``database`` whose writer waits to be told; yields (URL, its tasks)."""
    app = create_app(config(published, TaskSettings(database, jwt_keys=(signer.pem,), progress_write_s=NEVER)))
    with uvicorn_server(app) as url:
        yield url, app.state.tasks


def stored(database: str, task_id: str) -> tuple[str, int, dict[str, int]]:
    """What the database holds: the task's status and bytes, and its items' bytes by path."""
    repository = Repository(database)
    try:
        with repository.reading() as s:
            task = s.get(DownloadTask, uuid.UUID(task_id))
            assert task is not None
            items = {path: n for path, n in s.execute(select(DownloadItem.relative_path, DownloadItem.downloaded_bytes)
                                                      .where(DownloadItem.download_task_id == task.id))}
            return task.status, task.downloaded_bytes, items
    finally:
        repository.close()


def started(player: Client) -> tuple[str, dict]:
    """A new downloading task and its largest item."""
    task_id = player.create(f"/games/{uuid.uuid4().hex[:8]}")[1]["data"]["id"]
    items = player.call("GET", f"/tasks/{task_id}")[1]["data"]["attributes"]["items"]
    assert player.report(task_id)[1]["data"]["attributes"]["status"] == "downloading"
    return task_id, max(items, key=lambda i: i["totalFileSizeBytes"])


def moved(item: dict, n: int) -> list[dict]:
    return [{"itemId": item["itemId"], "downloadedBytes": n}]


def test_a_report_that_moves_bytes_costs_no_statement_and_is_written_behind_exactly(published, signer, database):
    with instance(published, signer, database) as (url, tasks):
        player = Client(url, signer.token("behind", [PRODUCT]))
        task_id, item = started(player)
        statements: list[str] = []
        event.listen(tasks.repository.engine, "before_cursor_execute",
                     lambda conn, cursor, sql, *rest: sql == "BEGIN" or statements.append(" ".join(sql.split()[:4])))
        player.report(task_id, items=moved(item, 1), downloaded=1)
        assert statements == ["SELECT download_items.id, download_items.download_task_id, download_items.relative_path,"]
        # (the item, read once: on SQLite, a BEGIN too)
        statements.clear()
        for n in (10, 20, 300):
            status, body, _ = player.report(task_id, items=moved(item, n), downloaded=n + 5)
            a = body["data"]["attributes"]
            assert (status, a["status"], a["downloadedBytes"], a["queuePosition"]) == (200, "downloading", n + 5, 0)
        assert statements == []
        assert stored(database, task_id)[:2] == ("downloading", 0)  # not written yet
        a = player.call("GET", f"/tasks/{task_id}")[1]["data"]["attributes"]  # this instance shows what it took
        assert a["downloadedBytes"] == 305
        assert [i["downloadedBytes"] for i in a["items"] if i["itemId"] == item["itemId"]] == [300]
        tasks.queue.running.write()
        status, downloaded, items = stored(database, task_id)
        assert (status, downloaded, items[item["relativePath"]]) == ("downloading", 305, 300)
        assert sum(items.values()) == 300  # no other item moved
        # more bytes than the item has: refused as ever, nothing taken
        status, body, _ = player.report(task_id, items=moved(item, item["totalFileSizeBytes"] + 1), downloaded=400)
        assert (status, code(body)) == (400, "INVALID_ARGUMENT")
        assert body["errors"][0]["detail"] == (f"item {item['relativePath']!r}: {item['totalFileSizeBytes'] + 1} "
                                               f"bytes reported, it has {item['totalFileSizeBytes']}")
        assert player.call("GET", f"/tasks/{task_id}")[1]["data"]["attributes"]["downloadedBytes"] == 305


def test_a_crash_loses_at_most_the_progress_not_written_never_a_status(published, signer, database):
    token = signer.token("crashing", [PRODUCT])
    with instance(published, signer, database) as (url, _):
        player = Client(url, token)
        task_id, item = started(player)
        player.report(task_id, items=moved(item, 100), downloaded=100)
        assert player.call("POST", f"/tasks/{task_id}/pause")[1]["data"]["attributes"]["downloadedBytes"] == 100
        assert player.call("POST", f"/tasks/{task_id}/resume")[1]["data"]["attributes"]["status"] == "downloading"
        for n in (200, 300):
            player.report(task_id, items=moved(item, n), downloaded=n)
        # what a crash now would leave: another instance, starting on the same database
        with instance(published, signer, database) as (again, _):
            a = Client(again, token).call("GET", f"/tasks/{task_id}")[1]["data"]["attributes"]
            assert (a["status"], a["downloadedBytes"]) == ("downloading", 100)  # the pause wrote what came before it
            assert [i["downloadedBytes"] for i in a["items"] if i["itemId"] == item["itemId"]] == [100]
    # the first instance stopped: it wrote what it had taken
    status, downloaded, items = stored(database, task_id)
    assert (status, downloaded, items[item["relativePath"]]) == ("downloading", 300, 300)


def test_a_write_never_undoes_a_newer_change(published, signer, database):
    token = signer.token("undone", [PRODUCT])
    with instance(published, signer, database) as (url_a, a), instance(published, signer, database) as (url_b, _):
        on_a, on_b = Client(url_a, token), Client(url_b, token)
        task_id, item = started(on_a)
        on_a.report(task_id, items=moved(item, 1), downloaded=1)
        on_a.report(task_id, items=moved(item, 50), downloaded=50)  # in a's memory
        done = on_b.report(task_id, status="completed")[1]["data"]["attributes"]
        assert (done["status"], done["downloadedBytes"]) == ("completed", done["totalSizeBytes"])
        a.queue.running.write()  # a's older progress comes after the completion
        status, downloaded, items = stored(database, task_id)
        assert (status, downloaded, items[item["relativePath"]]) == \
            ("completed", done["totalSizeBytes"], item["totalFileSizeBytes"])


def test_a_pause_on_another_instance_reaches_this_one_when_it_reads_again(published, signer, postgres_url):
    database = postgres_url  # several instances: PostgreSQL's
    token = signer.token("elsewhere", [PRODUCT])
    with instance(published, signer, database) as (url_a, a), instance(published, signer, database) as (url_b, _):
        on_a, on_b = Client(url_a, token), Client(url_b, token)
        task_id, item = started(on_a)
        on_a.report(task_id, items=moved(item, 1), downloaded=1)
        assert on_b.call("POST", f"/tasks/{task_id}/pause")[1]["data"]["attributes"]["status"] == "paused"
        assert on_a.report(task_id, downloaded=2)[1]["data"]["attributes"]["status"] == "downloading"  # not yet
        a.queue.running.write()  # writes, and reads again the status of the tasks known here
        a_now = on_a.report(task_id, downloaded=3)[1]["data"]["attributes"]
        # a's progress, not written when b paused, is not written over the pause either (the
        # client's reports after a resume carry its bytes again)
        assert (a_now["status"], a_now["downloadedBytes"]) == ("paused", 0)
        assert stored(database, task_id)[:2] == ("paused", 0)


def test_a_task_started_elsewhere_is_read_not_written_at_its_first_report_here(published, signer, database):
    token = signer.token("newcomer", [PRODUCT])
    with instance(published, signer, database) as (url_a, _), instance(published, signer, database) as (url_b, b):
        task_id, item = started(Client(url_a, token))
        on_b = Client(url_b, token)
        on_b.call("GET", f"/tasks/{task_id}")  # the token verified on b
        statements: list[str] = []
        event.listen(b.repository.engine, "before_cursor_execute",
                     lambda conn, cursor, sql, *rest: sql == "BEGIN" or statements.append(sql.split()[0]))
        a = on_b.report(task_id, items=moved(item, 7), downloaded=7)[1]["data"]["attributes"]
        assert (a["status"], a["downloadedBytes"]) == ("downloading", 7)
        assert statements == ["SELECT", "SELECT", "SELECT"]  # the task, its place in the queue, the item
        b.queue.running.write()
        assert stored(database, task_id)[1] == 7
