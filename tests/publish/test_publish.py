"""publish: versions pushed to regional origins (three S3 buckets on moto, directories),
in commit order, resumable, through faults, by racing publishers, within one bandwidth cap;
by `run` and `publish --channel` in the same command; players install from every origin
afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import types
from pathlib import Path

import pytest

from helpers import DEPOT, assert_installed, dangling, kill_when, root_of, signed_player, tree_snapshot
from depot_testing.fixtures import PRODUCT, fixture_tar, signed_repository
from pipeline import layout
from pipeline.client.install import install, resolve_version
from pipeline.client.update import update
from pipeline.formats import channel
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.storage import Location, open_store
from depot_testing.faulty_proxy import FaultyProxy
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

REGIONS = ("msk", "spb", "nsk")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    return signed_repository(tmp_path_factory.mktemp("signed"), versions=("1.0.0", "1.1.0", "1.2.0"))


@pytest.fixture
def repo(signed, tmp_path):
    """A private copy of the signed repository (tests move its channels)."""
    shutil.copytree(signed, tmp_path / "release")
    return tmp_path / "release"


def test_publish_to_three_regions_then_players_install_from_each(repo, s3, s3_endpoint, tmp_path, build_dirs):
    import boto3

    s3c = boto3.client("s3", endpoint_url=s3_endpoint)
    for r in REGIONS:
        s3c.create_bucket(Bucket=f"cdn-{r}-{tmp_path.name[-8:].lower().replace('_', '-')}")
    origins = [open_store(s3.resolve(f"s3://cdn-{r}-{tmp_path.name[-8:].lower().replace('_', '-')}/depot"))
               for r in REGIONS]
    store, ring = open_store(str(repo / "repo")), Keyring(repo / "keys")
    promote(store, PRODUCT, "1.0.0", "stable")
    repository.sign_documents(store, ring, PRODUCT)
    first = publish(store, origins, PRODUCT, ["1.0.0"], channels=["stable"], verify=True)
    for report in first.origins:
        assert report.uploaded > 0 and report.retries == 0 and report.timestamp == "updated"
        assert report.verified > 0 and report.versions == [f"{PRODUCT} 1.0.0"]
        assert dangling(open_store(s3.resolve(report.origin))) == []
    for i, origin in enumerate(origins):
        dest = tmp_path / f"game-{i}"
        install(signed_player(origin.url, root_of(repo), tmp_path / f"data-{i}", s3), PRODUCT, "1.0.0", dest)
        assert_installed(dest, build_dirs["1.0.0"])

    again = publish(store, origins, PRODUCT, ["1.0.0"], channels=["stable"])
    assert [(r.uploaded, r.skipped == first.origins[0].uploaded, r.timestamp) for r in again.origins] == \
        [(0, True, "unchanged")] * 3

    promote(store, PRODUCT, "1.2.0", "stable")
    repository.sign_documents(store, ring, PRODUCT)
    publish(store, origins, PRODUCT, ["1.2.0"], channels=["stable"])
    client = signed_player(origins[1].url, root_of(repo), tmp_path / "data-0", s3)
    r = update(client, tmp_path / "game-0", channel="stable")
    assert (r.to_version, r.method) == ("1.2.0", "delta")
    assert_installed(tmp_path / "game-0", build_dirs["1.2.0"])


def test_every_channel_target_goes_out_before_the_metadata_that_names_it(repo, tmp_path, build_dirs):
    """The repository's stable delivers 1.2.0; publishing only 1.0.0 to a new origin must
    still push 1.2.0 first, or the signed metadata would point players at nothing."""
    store = open_store(str(repo / "repo"))
    origin = open_store(str(tmp_path / "origin"))
    r = publish(store, [origin], PRODUCT, ["1.0.0"])
    assert sorted(r.origins[0].versions) == [f"{PRODUCT} 1.0.0", f"{PRODUCT} 1.2.0"]
    assert dangling(origin) == []
    install(signed_player(tmp_path / "origin", root_of(repo), tmp_path / "data"), PRODUCT, "1.2.0", tmp_path / "g")
    assert_installed(tmp_path / "g", build_dirs["1.2.0"])


def test_a_publish_through_faults_completes_and_verifies(repo, s3, s3_endpoint, s3_bucket, tmp_path, build_dirs):
    store = open_store(str(repo / "repo"))
    faults = {"503": 0.08, "reset": 0.05, "cut": 0.05, "stall": 0.02}
    with FaultyProxy(s3_endpoint, faults, seed=7, stall_s=2.0) as proxy:
        flaky = open_store(Location(f"{s3_bucket}/flaky", endpoint=proxy.url, timeout=1.0))
        r = publish(store, [flaky], PRODUCT, ["1.1.0"], retries=8, verify=True).origins[0]
        # every kind of fault happened; the S3 client retries first, the uploader after it
        assert all(proxy.injected[k] > 0 for k in faults), proxy.injected
    assert r.verified > 0 and r.timestamp == "updated"
    direct = open_store(s3.resolve(f"{s3_bucket}/flaky"))
    assert dangling(direct) == []
    install(signed_player(direct.url, root_of(repo), tmp_path / "data", s3), PRODUCT, "1.1.0", tmp_path / "g")
    assert_installed(tmp_path / "g", build_dirs["1.1.0"])


def test_a_publish_killed_anywhere_and_run_again_is_consistent(repo, tmp_path, build_dirs):
    origin = tmp_path / "origin"
    args = DEPOT + ["--repo", str(repo / "repo"), "publish", "-p", PRODUCT, "-v", "1.0.0", "-v", "1.1.0",
                    "--origin", str(origin), "--jobs", "2", "--max-rate", "384KiB"]
    seen = []

    def consistent() -> bool:
        if origin.exists():
            seen.append(len(list(origin.rglob("*"))))
            assert dangling(open_store(str(origin))) == []
        return False

    def holds(n: int):
        return lambda: origin.exists() and sum(p.is_file() for p in origin.rglob("*")) >= n

    # killed once the origin holds 2, 6, 12 then 24 files: each run resumes the last
    killed = kill_when(args, [holds(n) for n in (2, 6, 12, 24)], consistent)
    assert killed >= 2 and any(seen)
    import subprocess

    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert dangling(open_store(str(origin))) == []
    install(signed_player(origin, root_of(repo), tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "g")
    assert_installed(tmp_path / "g", build_dirs["1.1.0"])


def test_an_origin_that_fails_does_not_stop_the_others(repo, tmp_path, build_dirs):
    """One origin refuses every write (an immutable directory, as a full or read-only mount
    would): the other still gets every version and its commit, and the command fails with
    the refusing origin's error, naming it."""
    stuck, healthy = tmp_path / "stuck", tmp_path / "healthy"
    stuck.mkdir()
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.fail("this test makes a directory immutable with chattr +i: run the suite as root on ext4 (CI does)")
    try:
        # The refusal comes at the first write (no retries); the healthy origin, on a
        # slow link, is still sending data then.
        p = subprocess.run(DEPOT + ["--json", "--repo", str(repo / "repo"), "publish", "-p", PRODUCT, "-v", "1.0.0",
                                    "-v", "1.1.0", "--origin", str(stuck), "--origin", str(healthy),
                                    "--retries", "0", "--max-rate", "1MiB"], capture_output=True, text=True)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert p.returncode == 9, p.stderr
    assert json.loads(p.stdout)["error"] == "STORE_UNAVAILABLE"
    assert p.stderr.splitlines() == [f"depot: error: {stuck}/{layout.STORE_MARKER_KEY}: PermissionError: [Errno 1] "
                                     f"Operation not permitted: '{stuck}' [STORE_UNAVAILABLE]"]
    assert list(stuck.iterdir()) == []
    key = layout.metadata_key("timestamp")
    assert (healthy / key).read_bytes() == (repo / "repo" / key).read_bytes()
    assert dangling(open_store(str(healthy))) == []
    install(signed_player(healthy, root_of(repo), tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "g")
    assert_installed(tmp_path / "g", build_dirs["1.1.0"])


def test_two_publishers_racing_on_one_origin_both_finish_correct(repo, tmp_path, build_dirs):
    store = open_store(str(repo / "repo"))
    origin = open_store(str(tmp_path / "origin"))
    results, errors = [], []

    def run(version: str) -> None:
        try:
            results.append(publish(store, [origin], PRODUCT, [version], jobs=4))
        except Exception as exc:  # noqa: BLE001 - a racing publisher must not fail: the test says how
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(v,)) for v in ("1.0.0", "1.1.0", "1.1.0")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 3
    assert dangling(origin) == []
    for v in ("1.0.0", "1.1.0"):
        install(signed_player(tmp_path / "origin", root_of(repo), tmp_path / f"d{v}"), PRODUCT, v, tmp_path / v)
        assert_installed(tmp_path / v, build_dirs[v])


def test_publish_promote_and_rollback_announce_to_the_sinks_and_a_dead_sink_blocks_nothing(repo, tmp_path):
    import json
    import socket
    import subprocess

    with socket.socket() as s:  # a port nobody listens on: the webhook is down
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    config = tmp_path / "locations.toml"
    config.write_text(f'[msk]\nurl = "{tmp_path / "msk"}"\npublic_url = "https://cdn-msk.example/depot"\n'
                      f'[spb]\nurl = "{tmp_path / "spb"}"\n'
                      f'[events]\njsonl = "events.jsonl"\nwebhook = "http://127.0.0.1:{dead}/hook"\ntimeout = 1\n'
                      f'outbox = "outbox"\n')
    env = {**__import__("os").environ, "DEPOT_KEYS": str(repo / "keys")}

    def depot(*args) -> dict:
        p = subprocess.run(DEPOT + ["--json", "--locations", str(config), "--repo", str(repo / "repo"), *args],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    r = depot("publish", "-p", PRODUCT, "-v", "1.1.0", "--origin", "msk", "--origin", "spb")
    assert r["events"]["jsonl"]["error"] is None and r["events"]["webhook"]["pending"] >= 2
    depot("promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "stable", "--origin", "msk", "--origin", "spb")
    depot("rollback", "-p", PRODUCT, "-c", "stable", "--origin", "msk")
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["data"]["action"], e["data"]["origin"]) for e in lines] == [
        ("publish", "msk"), ("publish", "spb"), ("promote", "msk"), ("promote", "spb"), ("rollback", "msk")]
    first = lines[0]
    assert first["type"] == "com.platform.download.manifest.updated.v1" and first["specversion"] == "1.0"
    assert first["data"]["manifestUrl"] == f"https://cdn-msk.example/depot/{layout.manifest_key(PRODUCT, '1.1.0')}"
    assert lines[1]["data"]["manifestUrl"] == str(tmp_path / "spb" / layout.manifest_key(PRODUCT, "1.1.0"))
    assert (lines[2]["data"]["channel"], lines[4]["data"]["versionId"]) == ("stable", "1.2.0")
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 5  # waiting for the webhook
    config.write_text(config.read_text().replace(f'webhook = "http://127.0.0.1:{dead}/hook"\n', ""))
    flushed = depot("events", "flush")
    assert flushed["jsonl"]["pending"] == 0 and list((tmp_path / "outbox").glob("*.json")) == []
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 5  # nothing twice


def _depot_json(repo: Path, *args) -> dict:
    """The depot command as a release pipeline runs it, signing with the repository's keys."""
    env = {**os.environ, "DEPOT_KEYS": str(repo / "keys")}
    p = subprocess.run(DEPOT + ["--json", "--repo", str(repo / "repo"), *map(str, args)], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_run_with_an_origin_publishes_the_new_version_in_the_same_command(repo, tmp_path, build_dirs):
    origin = tmp_path / "origin"
    r = _depot_json(repo, "run", fixture_tar("1.3.0"), "-p", PRODUCT, "-v", "1.3.0", "--diff-last", "1",
                    "--origin", origin)
    assert r["chunk"]["created"] and r["signed"]["roles"] == {f"product-{PRODUCT}": 2}
    [pushed] = r["published"]["origins"]
    assert pushed["origin"] == str(origin) and pushed["timestamp"] == "updated"
    assert sorted(pushed["versions"]) == [f"{PRODUCT} 1.2.0", f"{PRODUCT} 1.3.0"]  # 1.2.0: what stable delivers
    for key in (layout.manifest_key(PRODUCT, "1.3.0"), layout.plan_key(PRODUCT, "1.2.0", "1.3.0"),
                layout.metadata_key("timestamp")):
        assert (origin / key).read_bytes() == (repo / "repo" / key).read_bytes()
    assert dangling(open_store(str(origin))) == []
    install(signed_player(origin, root_of(repo), tmp_path / "data"), PRODUCT, "1.3.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.3.0"])


def test_publish_with_a_channel_points_it_at_the_last_version_here_and_there(repo, tmp_path):
    origins = [tmp_path / "msk", tmp_path / "spb"]
    r = _depot_json(repo, "publish", "-p", PRODUCT, "-v", "1.0.0", "-v", "1.1.0", "--channel", "beta",
                    *[a for o in origins for a in ("--origin", o)])
    assert r["signed"]["roles"] == {f"product-{PRODUCT}": 2}
    assert [o["timestamp"] for o in r["origins"]] == ["updated", "updated"]
    store = open_store(str(repo / "repo"))
    pointer = channel.load(store, PRODUCT, "beta")
    assert (pointer.version, pointer.serial) == ("1.1.0", 1)
    key = layout.channel_key(PRODUCT, "beta")
    for i, origin in enumerate(origins):
        assert (origin / key).read_bytes() == store.get(key)
        assert dangling(open_store(str(origin))) == []
        assert resolve_version(signed_player(origin, root_of(repo), tmp_path / f"data-{i}"), PRODUCT, "beta") == \
            "1.1.0"


def test_max_rate_caps_every_origin_together(repo, tmp_path, monkeypatch, capsys):
    """The bandwidth cap on a clock that never moves: each upload waits for its bytes, so the
    longest wait is how long everything sent before it takes at the rate. One cap for all
    origins makes that every origin's bytes together; a cap per origin, one origin's."""
    from depot_app import cli  # the command in this process, so that its cap runs on the test's clock
    from pipeline.core import rate as rate_module

    waits = []
    monkeypatch.setattr(rate_module, "time", types.SimpleNamespace(monotonic=lambda: 0.0))
    monkeypatch.setattr(rate_module, "pause", lambda seconds, cancel=None: waits.append(seconds) or True)
    origins = [tmp_path / r for r in REGIONS]
    assert cli.main(["--json", "--repo", str(repo / "repo"), "publish", "-p", PRODUCT, "-v", "1.0.0",
                     "--max-rate", "256KiB", *[a for o in origins for a in ("--origin", str(o))]]) == 0
    report = json.loads(capsys.readouterr().out)
    # every byte pushed (the store's marker, written when an origin is first used, is not an upload)
    sent = sum(p.stat().st_size for o in origins for p in o.rglob("*")
               if p.is_file() and str(p.relative_to(o)) != layout.STORE_MARKER_KEY)
    assert [o["origin"] for o in report["origins"]] == [str(o) for o in origins]
    assert max(waits) == (sent - 256 * 1024) / (256 * 1024)


def test_an_origin_holding_another_repositorys_metadata_is_refused_and_left_as_it_was(repo, tmp_path):
    other = signed_repository(tmp_path / "other", versions=("1.0.0",))
    origin = tmp_path / "origin"
    _depot_json(other, "publish", "-p", PRODUCT, "-v", "1.0.0", "--origin", origin)
    before = tree_snapshot(origin)
    p = subprocess.run(DEPOT + ["--json", "--repo", str(repo / "repo"), "publish", "-p", PRODUCT, "-v", "1.2.0",
                                "--origin", str(origin)], capture_output=True, text=True,
                       env={**os.environ, "DEPOT_KEYS": str(repo / "keys")})
    assert p.returncode == 6, p.stderr
    assert json.loads(p.stdout)["error"] == "VERSION_CONFLICT"
    assert p.stderr.splitlines() == [
        f"depot: error: {origin}: holds another repository's signed metadata ({layout.metadata_key('root', 1)} "
        f"differs from {repo / 'repo'}'s): publish there only from that repository, or use another origin "
        "[VERSION_CONFLICT]"]
    assert tree_snapshot(origin) == before


def test_a_forged_timestamp_and_metadata_under_our_names_on_an_origin_are_replaced(repo, tmp_path, build_dirs):
    """A timestamp with a higher version that this repository's key did not sign, and a
    snapshot under our name with other bytes: players never trusted them, ours replace them."""
    origin = tmp_path / "origin"
    _depot_json(repo, "publish", "-p", PRODUCT, "-v", "1.2.0", "--origin", origin)
    ts_key = layout.metadata_key("timestamp")
    forged = json.loads((origin / ts_key).read_bytes())
    forged["signed"]["version"] += 100  # the signature no longer matches
    (origin / ts_key).write_text(json.dumps(forged))
    [snapshot] = origin.glob("metadata/*.snapshot.json")
    snapshot.write_bytes(snapshot.read_bytes().replace(b'"version"', b'"version" ', 1))
    r = _depot_json(repo, "publish", "-p", PRODUCT, "-v", "1.2.0", "--origin", origin)
    assert [o["timestamp"] for o in r["origins"]] == ["replaced"]
    for key in (ts_key, f"metadata/{snapshot.name}"):
        assert (origin / key).read_bytes() == (repo / "repo" / key).read_bytes()
    install(signed_player(origin, root_of(repo), tmp_path / "data"), PRODUCT, "1.2.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.2.0"])


def test_publish_verify_refuses_a_chunk_damaged_in_the_repository(repo, tmp_path):
    """`--verify` checks each chunk on the origin against its id: a chunk damaged in the
    repository is pushed as it is, and the check names it (comparing with the repository's
    bytes would find them equal)."""
    store = repo / "repo"
    args = DEPOT + ["--repo", str(store), "--keys", str(repo / "keys"), "--json", "publish", "-p", PRODUCT,
                    "--version", "1.0.0", "--version", "1.1.0", "--version", "1.2.0", "--verify", "--origin"]
    clean = subprocess.run(args + [str(tmp_path / "clean")], capture_output=True, text=True, check=True)
    checked = json.loads(clean.stdout)["origins"][0]["verified"]
    chunk = sorted((store / "chunks").rglob("*"))[-1]
    damaged = bytearray(chunk.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    chunk.write_bytes(bytes(damaged))
    key = chunk.relative_to(store).as_posix()
    p = subprocess.run(args + [str(tmp_path / "origin")], capture_output=True, text=True)
    assert (p.returncode, p.stderr) == (7, f"depot: error: {tmp_path / 'origin'}: 1 of {checked} objects read back "
                                           f"wrong (not their id's bytes, or not the repository's), e.g. {key} "
                                           "[CHUNK_INVALID]\n"), p.stderr
