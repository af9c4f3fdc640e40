"""State that survives: the service stopped mid-task and started again on the same database
(SQLite file or PostgreSQL) has every task, item and byte reported, and the client carries on."""

from __future__ import annotations

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import Client, service


def test_a_restart_mid_task_loses_no_task(published, signer, database):
    token = signer.token("restarter", [PRODUCT])
    with service(published, signer, database) as url:
        player = Client(url, token)
        running = player.create("/games/running")[1]["data"]["id"]
        waiting = player.create("/games/waiting", priority=0)[1]["data"]["id"]
        items = player.call("GET", f"/tasks/{running}")[1]["data"]["attributes"]["items"]
        player.report(running, items=[{"itemId": items[0]["itemId"], "downloadedBytes": items[0]["totalFileSizeBytes"],
                                       "status": "completed"}])
        before = {t: player.call("GET", f"/tasks/{t}")[1]["data"]["attributes"] for t in (running, waiting)}
    with service(published, signer, database) as url:  # a new server on the same database: migrated already
        player = Client(url, token)
        after = {t: player.call("GET", f"/tasks/{t}")[1]["data"]["attributes"] for t in (running, waiting)}  # links are signed anew
        assert after == before
        assert after[running]["status"] == "downloading"
        assert after[running]["downloadedBytes"] == items[0]["totalFileSizeBytes"]
        assert [t["id"] for t in player.call("GET", "/tasks/queue")[1]["data"]] == [running, waiting]
        a = player.report(running, status="completed")[1]["data"]["attributes"]
        assert (a["status"], a["downloadedBytes"]) == ("completed", a["totalSizeBytes"])
        assert player.report(waiting)[1]["data"]["attributes"]["status"] == "downloading"
