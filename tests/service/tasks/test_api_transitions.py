"""A task's statuses as the documents name them, moved by the API and by the client's
progress reports: pause, resume and cancel where they are allowed, INVALID_TASK_STATE
where they are not; a report to a paused or cancelled task changes nothing and says so;
download slots go by queue order."""

from __future__ import annotations

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import Client, code, service


@pytest.fixture(scope="module")
def url(published, signer, database):
    with service(published, signer, database, max_active_tasks=5,
                 max_concurrent_downloads=1) as url:
        yield url


def status_of(player: Client, task_id: str) -> str:
    status, body, _ = player.call("GET", f"/tasks/{task_id}")
    assert status == 200
    return body["data"]["attributes"]["status"]


def act(player: Client, method: str, path: str) -> tuple[int, str]:
    """(HTTP status, the task's status or the error code)."""
    status, body, _ = player.call(method, path)
    if body is None:
        return status, ""
    return status, body["errors"][0]["code"] if "errors" in body else body["data"]["attributes"]["status"]


def test_pause_resume_cancel_and_the_moves_they_refuse(url, signer):
    player = Client(url, signer.token("moves", [PRODUCT]))
    task = player.create("/games/moves")[1]["data"]["id"]
    assert act(player, "POST", f"/tasks/{task}/resume") == (409, "INVALID_TASK_STATE")  # queued
    assert act(player, "POST", f"/tasks/{task}/pause") == (200, "paused")
    assert act(player, "POST", f"/tasks/{task}/pause") == (409, "INVALID_TASK_STATE")
    assert act(player, "POST", f"/tasks/{task}/resume") == (200, "downloading")  # it holds the user's one slot
    assert act(player, "POST", f"/tasks/{task}/resume") == (409, "INVALID_TASK_STATE")
    assert act(player, "DELETE", f"/tasks/{task}") == (204, "")
    assert status_of(player, task) == "cancelled"
    for method, path in [("POST", "pause"), ("POST", "resume"), ("DELETE", "")]:
        assert act(player, method, f"/tasks/{task}/{path}".rstrip("/")) == (409, "INVALID_TASK_STATE"), path


def test_reports_start_the_task_that_holds_the_slot_and_finish_it(url, signer, published):
    player = Client(url, signer.token("reports", [PRODUCT]))
    task = player.create("/games/reports")[1]["data"]
    items = player.call("GET", f"/tasks/{task['id']}")[1]["data"]["attributes"]["items"]
    first, second = items[0], items[1]
    status, body, _ = player.report(task["id"], items=[{"itemId": first["itemId"], "downloadedBytes": 1}])
    a = body["data"]["attributes"]
    assert (status, a["status"], a["downloadedBytes"]) == (200, "downloading", 1)
    done = [{"itemId": first["itemId"], "downloadedBytes": first["totalFileSizeBytes"], "status": "completed"},
            {"relativePath": second["relativePath"], "downloadedBytes": 2}]
    a = player.report(task["id"], items=done)[1]["data"]["attributes"]
    assert a["downloadedBytes"] == first["totalFileSizeBytes"] + 2
    status, body, _ = player.report(task["id"], items=[{"itemId": first["itemId"],
                                                         "downloadedBytes": first["totalFileSizeBytes"] + 1}])
    assert (status, code(body)) == (400, "INVALID_ARGUMENT")
    status, body, _ = player.report(task["id"], items=[{"relativePath": "no/such/file", "downloadedBytes": 0}])
    assert (status, code(body)) == (400, "INVALID_ARGUMENT")
    assert player.report(task["id"], status="verifying")[1]["data"]["attributes"]["status"] == "verifying"
    assert act(player, "POST", f"/tasks/{task['id']}/pause") == (409, "INVALID_TASK_STATE")  # verifying
    a = player.report(task["id"], status="completed")[1]["data"]["attributes"]
    assert (a["status"], a["downloadedBytes"], a["totalProgressPercentage"], a["queuePosition"]) == \
        ("completed", task["attributes"]["totalSizeBytes"], 100.0, None)
    items = player.call("GET", f"/tasks/{task['id']}")[1]["data"]["attributes"]["items"]
    assert {(i["status"], i["downloadedBytes"] == i["totalFileSizeBytes"]) for i in items} == {("completed", True)}
    assert act(player, "DELETE", f"/tasks/{task['id']}") == (409, "INVALID_TASK_STATE")


def test_a_report_to_a_paused_or_cancelled_task_changes_nothing(url, signer):
    player = Client(url, signer.token("stopped", [PRODUCT]))
    task = player.create("/games/stopped")[1]["data"]["id"]
    assert player.report(task, downloaded=10)[1]["data"]["attributes"]["status"] == "downloading"
    player.call("POST", f"/tasks/{task}/pause")
    a = player.report(task, downloaded=20)[1]["data"]["attributes"]
    assert (a["status"], a["downloadedBytes"]) == ("paused", 10)
    player.call("DELETE", f"/tasks/{task}")
    a = player.report(task, downloaded=30, status="completed")[1]["data"]["attributes"]
    assert (a["status"], a["downloadedBytes"]) == ("cancelled", 10)


def test_an_error_reported_is_kept_until_resumed(url, signer):
    player = Client(url, signer.token("failing", [PRODUCT]))
    task = player.create("/games/failing")[1]["data"]["id"]
    status, body, _ = player.report(task, status="error")
    assert (status, code(body)) == (400, "INVALID_ARGUMENT")  # an error needs its details
    a = player.report(task, status="error", error={"errorCode": "CDN_UNREACHABLE", "errorMessage": "no origin"}
                      )[1]["data"]["attributes"]
    assert (a["status"], a["errorDetails"], a["queuePosition"]) == \
        ("error", {"errorCode": "CDN_UNREACHABLE", "errorMessage": "no origin"}, None)
    assert act(player, "POST", f"/tasks/{task}/pause") == (409, "INVALID_TASK_STATE")
    status, body, _ = player.call("POST", f"/tasks/{task}/resume")
    a = body["data"]["attributes"]
    assert (status, a["status"], a["errorDetails"]) == (200, "downloading", None)


def test_one_slot_goes_by_queue_order_and_priority_takes_it(url, signer):
    player = Client(url, signer.token("slots", [PRODUCT]))
    low = player.create("/games/low")[1]["data"]["id"]
    other = player.create("/games/other")[1]["data"]["id"]
    assert player.report(other)[1]["data"]["attributes"]["status"] == "queued"  # the slot is low's
    assert player.report(low)[1]["data"]["attributes"]["status"] == "downloading"
    status, body, _ = player.create("/games/high", priority=1)
    high = body["data"]["id"]
    assert (status, body["data"]["attributes"]["queuePosition"]) == (202, 0)
    assert status_of(player, low) == "downloading"  # until high's client starts it
    assert player.report(high)[1]["data"]["attributes"]["status"] == "downloading"
    a = player.report(low, downloaded=5)[1]["data"]["attributes"]
    assert (a["status"], a["downloadedBytes"], a["queuePosition"]) == ("queued", 0, 1)  # stop: the slot is taken
    assert act(player, "POST", f"/tasks/{high}/pause") == (200, "paused")
    assert player.report(low)[1]["data"]["attributes"]["status"] == "downloading"
    assert act(player, "POST", f"/tasks/{high}/resume") == (200, "downloading")  # first in the queue again
    assert status_of(player, low) == "queued"
    queue = player.call("GET", "/tasks/queue")[1]["data"]
    assert [(t["id"], t["attributes"]["status"], t["attributes"]["queuePosition"]) for t in queue] == \
        [(high, "downloading", 0), (low, "queued", 1), (other, "queued", 2)]
