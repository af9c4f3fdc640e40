"""Update tasks (the update plan's operations on the route the client takes, priced by the
same decision as the update check) and integrity checks (the installed version's files,
each reported intact or corrupted)."""

from __future__ import annotations

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import Client, code, service
from pipeline.delta.route import update_route
from pipeline.formats import manifest as manifest_doc, plan as plan_doc, plan_index


@pytest.fixture(scope="module")
def url(published, signer, database):
    with service(published, signer, database) as url:
        yield url


def initiate(player: Client, **attributes) -> tuple[int, dict | None]:
    status, body, _ = player.call("POST", "/updates/initiate", {"data": {"type": "updateInitiateRequest",
                                                                         "attributes": attributes}})
    return status, body


def test_an_update_task_holds_the_plans_operations(url, signer, published):
    repo = published["repo"]
    target, installed = (manifest_doc.load(repo, PRODUCT, v) for v in ("1.2.0", "1.0.0"))
    route = update_route(plan_index.load(repo, PRODUCT), "1.0.0", "1.2.0", target.chunk_cost_from(installed))
    assert route is not None
    plans = [plan_doc.load(repo, PRODUCT, a, b) for a, b in zip(route.versions, route.versions[1:])]
    player = Client(url, signer.token("updater", [PRODUCT]))
    status, body = initiate(player, productId=PRODUCT, targetVersionId="1.2.0", currentVersionId="1.0.0",
                            targetPath="/games/upd")
    assert status == 202
    task = body["data"]
    a = task["attributes"]
    assert (a["taskType"], a["status"], a["versionId"], a["fromVersionId"], a["queuePosition"]) == \
        ("update", "queued", "1.2.0", "1.0.0", 0)
    assert len(task["links"]["plans"]) == len(plans)
    items = player.call("GET", f"/tasks/{task['id']}")[1]["data"]["attributes"]["items"]
    expected = [(f.path, f.op, f.patch_bytes if f.op == "patch" else f.download_bytes, f.hash_sha256)
                for p in plans for f in p.files if f.op != "keep"]
    assert expected and [(i["relativePath"], i["operation"], i["totalFileSizeBytes"], i["expectedHashSha256"])
                         for i in items] == expected
    assert a["totalSizeBytes"] == sum(size for _, _, size, _ in expected)


def test_an_update_from_what_the_user_installed_through_a_task(url, signer, published):
    player = Client(url, signer.token("installer", [PRODUCT]))
    status, body = initiate(player, productId=PRODUCT, targetVersionId="1.2.0")
    assert (status, code(body)) == (400, "INVALID_ARGUMENT")  # nothing installed through the service
    task = player.create("/games/inst", "1.1.0")[1]["data"]["id"]
    player.report(task, status="completed")
    status, body = initiate(player, productId=PRODUCT)  # to the channel's version
    a = body["data"]["attributes"]
    assert (status, a["fromVersionId"], a["versionId"], a["targetPath"]) == (202, "1.1.0", "1.2.0", "/games/inst")
    assert initiate(player, productId=PRODUCT)[0] == 200  # asked again: the same task
    status, body = initiate(player, productId=PRODUCT, targetVersionId="1.1.0", currentVersionId="1.1.0",
                            targetPath="/games/inst")
    assert (status, code(body)) == (400, "INVALID_ARGUMENT")
    status, body = initiate(player, productId=PRODUCT, targetVersionId="9.9.9")
    assert (status, code(body)) == (404, "NOT_FOUND")
    status, body = initiate(player, productId="../etc", targetVersionId="1.2.0")
    assert (status, code(body)) == (400, "INVALID_NAME")
    status, body = initiate(Client(url, signer.token("installer", ["other"])), productId=PRODUCT)
    assert (status, code(body)) == (403, "FORBIDDEN")


def test_an_integrity_check_lists_the_corrupted_files(url, signer, published):
    manifest = manifest_doc.load(published["repo"], PRODUCT, "1.1.0")
    player = Client(url, signer.token("checker", [PRODUCT]))
    request = {"data": {"type": "integrityVerificationRequest",
                        "attributes": {"productId": PRODUCT, "installedVersionId": "1.1.0", "targetPath": "/g/c"}}}
    status, body, _ = player.call("POST", "/integrity/verify", request)
    assert status == 202
    check = body["data"]
    a = check["attributes"]
    assert (check["type"], a["status"], a["totalFiles"], a["checkedFiles"], a["corruptedFiles"]) == \
        ("verificationTask", "pending", len(manifest.files), 0, [])
    bad = manifest.files[1]
    first = player.report(check["id"], path="integrity/verify", items=[
        {"relativePath": manifest.files[0].path, "downloadedBytes": manifest.files[0].size, "status": "completed"},
        {"relativePath": bad.path, "downloadedBytes": bad.size, "status": "error", "errorCode": "FILE_HASH_MISMATCH"}])
    a = first[1]["data"]["attributes"]
    assert (a["status"], a["checkedFiles"], a["corruptedFiles"]) == \
        ("in_progress", 2, [{"relativePath": bad.path, "errorCode": "FILE_HASH_MISMATCH"}])
    a = player.report(check["id"], path="integrity/verify", status="completed")[1]["data"]["attributes"]
    assert (a["status"], a["checkedFiles"], a["corruptedFiles"]) == \
        ("completed", len(manifest.files), [{"relativePath": bad.path, "errorCode": "FILE_HASH_MISMATCH"}])
    assert player.call("GET", f"/integrity/verify/{check['id']}")[1]["data"]["attributes"] == a
    status, body, _ = player.call("GET", f"/tasks/{check['id']}")  # not a download task
    assert (status, code(body)) == (404, "NOT_FOUND")
    status, body, _ = Client(url, signer.token("peeker", [PRODUCT])).call("GET", f"/integrity/verify/{check['id']}")
    assert (status, code(body)) == (404, "NOT_FOUND")
    assert player.call("GET", "/tasks/queue")[1]["data"] == []  # checks do not queue
