"""The user's queue: reorder with the documents' body, its refusals, and the task list
filtered by status and paged."""

from __future__ import annotations

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import Client, code, service


@pytest.fixture(scope="module")
def url(published, signer, database):
    with service(published, signer, database, max_active_tasks=4) as url:
        yield url


def order(player: Client) -> list[str]:
    return [t["attributes"]["targetPath"] for t in player.call("GET", "/tasks/queue")[1]["data"]]


def test_reorder_places_the_named_tasks_and_keeps_the_others_in_order(url, signer):
    player = Client(url, signer.token("reorder", [PRODUCT]))
    ids = {name: player.create(f"/g/{name}")[1]["data"]["id"] for name in "abcd"}
    assert order(player) == ["/g/a", "/g/b", "/g/c", "/g/d"]
    status, body, _ = player.call("POST", "/tasks/queue/reorder",
                                  {"data": [{"taskId": ids["d"], "order": 0}, {"taskId": ids["a"], "order": 2}]})
    assert status == 200
    assert [(t["attributes"]["targetPath"], t["attributes"]["queuePosition"]) for t in body["data"]] == \
        [("/g/d", 0), ("/g/b", 1), ("/g/a", 2), ("/g/c", 3)]
    assert order(player) == ["/g/d", "/g/b", "/g/a", "/g/c"]
    assert player.call("GET", f"/tasks/{ids['a']}")[1]["data"]["attributes"]["queuePosition"] == 2
    stranger = Client(url, signer.token("stranger", [PRODUCT]))
    for body, expected in [
        ({"data": [{"taskId": ids["a"], "order": 4}]}, (400, "INVALID_ARGUMENT")),
        ({"data": [{"taskId": ids["a"], "order": 0}, {"taskId": ids["a"], "order": 1}]}, (400, "INVALID_ARGUMENT")),
        ({"data": [{"taskId": ids["a"], "order": 0}, {"taskId": ids["b"], "order": 0}]}, (400, "INVALID_ARGUMENT")),
        ({"data": [{"taskId": "not-a-task", "order": 0}]}, (404, "NOT_FOUND")),
        ({"data": []}, (400, "INVALID_ARGUMENT")),
    ]:
        status, answer, _ = player.call("POST", "/tasks/queue/reorder", body)
        assert (status, code(answer)) == expected, body
    status, answer, _ = stranger.call("POST", "/tasks/queue/reorder", {"data": [{"taskId": ids["a"], "order": 0}]})
    assert (status, code(answer)) == (404, "NOT_FOUND")
    assert order(player) == ["/g/d", "/g/b", "/g/a", "/g/c"]
    player.call("DELETE", f"/tasks/{ids['b']}")
    assert [t["attributes"]["queuePosition"] for t in player.call("GET", "/tasks/queue")[1]["data"]] == [0, 1, 2]
    status, answer, _ = player.call("POST", "/tasks/queue/reorder", {"data": [{"taskId": ids["b"], "order": 0}]})
    assert (status, code(answer)) == (404, "NOT_FOUND")  # cancelled: out of the queue


def test_the_list_filters_by_status_and_pages(url, signer):
    player = Client(url, signer.token("lister", [PRODUCT]))
    made = [player.create(f"/l/{n}")[1]["data"]["id"] for n in range(4)]
    player.call("POST", f"/tasks/{made[1]}/pause")
    player.call("DELETE", f"/tasks/{made[2]}")
    status, body, _ = player.call("GET", "/tasks?limit=3")
    assert status == 200
    assert [t["id"] for t in body["data"]] == made[::-1][:3]  # newest first
    assert body["meta"] == {"total": 4, "page": 1, "limit": 3, "pages": 2}
    assert body["links"]["next"] == "/api/v1/download/tasks?limit=3&page=2"
    status, body, _ = player.call("GET", body["links"]["next"].removeprefix("/api/v1/download"))
    assert [t["id"] for t in body["data"]] == [made[0]] and body["links"]["next"] is None
    body = player.call("GET", "/tasks?status=paused&status=cancelled")[1]
    assert sorted((t["id"], t["attributes"]["status"]) for t in body["data"]) == \
        sorted([(made[1], "paused"), (made[2], "cancelled")])
    assert player.call("GET", "/tasks?status=queued")[1]["meta"]["total"] == 2
    for bad in ("/tasks?status=sleeping", "/tasks?page=0", "/tasks?limit=101"):
        status, answer, _ = player.call("GET", bad)
        assert (status, code(answer)) == (400, "INVALID_ARGUMENT"), bad
    assert Client(url, signer.token("nobody", [PRODUCT])).call("GET", "/tasks")[1]["meta"]["total"] == 0
