"""The key life and a player's trust, through the depot command as release engineers and
players run it; and what depot publishes, read by a TUF client that is not depot."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import DEPOT, PRODUCT, fixture_tar
from pipeline import layout
from pipeline.testing.http_origins import StaticOrigin


class Depot:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.env = {**os.environ, "DEPOT_DATA_DIR": str(tmp / "player-data")}
        self.env.pop("DEPOT_KEYS", None)

    def __call__(self, *args, check: int | None = 0) -> subprocess.CompletedProcess:
        p = subprocess.run(DEPOT + ["--repo", str(self.tmp / "repo"), *map(str, args)], capture_output=True, text=True,
                           cwd=self.tmp, env=self.env)
        if check is not None:
            assert p.returncode == check, p.stderr
        return p

    def json(self, *args, check: int | None = 0) -> dict:
        return json.loads(self("--json", *args, check=check).stdout)


@pytest.fixture
def release(tmp_path):
    """A signed repository made the way the README says: keys, root, a product key, a
    build run and promoted."""
    depot = Depot(tmp_path)
    keys = tmp_path / "keys"
    depot("keys", "generate", "--out", keys, "root-1", "root-2", "targets", "snapshot", "timestamp", PRODUCT)
    depot("trust", "init", "--root-key", keys / "root-1.key", "--root-key", keys / "root-2.key", "--threshold", 2,
          "--targets-key", keys / "targets.key", "--snapshot-key", keys / "snapshot.key",
          "--timestamp-key", keys / "timestamp.key")
    (keys / "root-1.key").rename(tmp_path / "root-1.key.offline")  # root keys leave the build machine
    (keys / "root-2.key").rename(tmp_path / "root-2.key.offline")
    depot("--keys", keys, "trust", "add-key", "-p", PRODUCT, "--key", keys / f"{PRODUCT}.pub")
    depot("configure", "-p", PRODUCT, "--chunk-min", "16KiB", "--chunk-avg", "64KiB", "--chunk-max", "256KiB")
    r = depot.json("--keys", keys, "run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0")
    assert r["signed"]["roles"] == {f"product-{PRODUCT}": 1}
    depot("--keys", keys, "promote", "-p", PRODUCT, "-v", "1.0.0", "-c", "stable")
    depot("trust", "root", "-o", tmp_path / "root.json")
    return depot


def test_keys_are_private_to_their_owner_and_never_overwritten(tmp_path):
    depot = Depot(tmp_path)
    made = depot.json("keys", "generate", "--out", tmp_path / "k", "a")["keys"][0]
    assert stat.S_IMODE(os.stat(made["private"]).st_mode) == 0o600
    assert json.loads(Path(made["public"]).read_text())["keyid"] == made["keyid"]
    before = Path(made["private"]).read_bytes()
    p = depot("keys", "generate", "--out", tmp_path / "k", "a", check=2)
    assert "INVALID_ARGUMENT" in p.stderr and "never overwritten" in p.stderr
    assert Path(made["private"]).read_bytes() == before


def test_no_key_ever_lands_in_the_repository(release, tmp_path):
    keys = {p.read_bytes() for p in (tmp_path / "keys").glob("*.key")} | {
        (tmp_path / f"root-{i}.key.offline").read_bytes() for i in (1, 2)}
    for f in (tmp_path / "repo").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"PRIVATE KEY" not in data and not any(k in data for k in keys), f


def test_a_player_installs_with_the_trusted_root_then_without_repeating_it(release, tmp_path):
    origin = tmp_path / "repo"
    r = release.json("install", "--origin", origin, "-p", PRODUCT, "-c", "stable", "--dest", tmp_path / "game",
                     "--trust", tmp_path / "root.json")
    assert r["version"] == "1.0.0"
    release("verify", "--dest", tmp_path / "game")
    keys = tmp_path / "keys"
    release("--keys", keys, "run", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1.1.0", "--diff-last", "1")
    release("--keys", keys, "promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "stable")
    u = release.json("update", "--origin", origin, "--dest", tmp_path / "game", "-c", "stable")  # remembered
    assert (u["to_version"], u["method"]) == ("1.1.0", "delta")


def test_a_player_without_a_trusted_root_is_told_how_to_get_one(release, tmp_path):
    r = release.json("install", "--origin", tmp_path / "repo", "-p", PRODUCT, "-v", "1.0.0", "--dest",
                     tmp_path / "game", check=17)
    assert r["error"] == "TRUST_MISSING" and "--trust" in r["message"]
    assert not (tmp_path / "game").exists()
    release("install", "--allow-unsigned", "--origin", tmp_path / "repo", "-p", PRODUCT, "-v", "1.0.0", "--dest",
            tmp_path / "game")


def test_tampering_and_expiry_exit_with_their_codes(release, tmp_path):
    origin = tmp_path / "repo"
    key = layout.manifest_key(PRODUCT, "1.0.0")
    for f in origin.glob(f"products/{PRODUCT}/versions/1.0.0/*manifest.json"):
        f.write_bytes(f.read_bytes().replace(b'"executable":true', b'"executable":false', 1))
    r = release.json("install", "--origin", origin, "-p", PRODUCT, "-v", "1.0.0", "--dest", tmp_path / "game",
                     "--trust", tmp_path / "root.json", check=16)
    assert r["error"] == "TARGET_MISMATCH" and key in r["message"]
    release("--keys", tmp_path / "keys", "trust", "refresh")  # a new timestamp: still fine ...
    settings = origin / "trust.json"
    doc = json.loads(settings.read_text())
    doc["lifetimes"]["timestamp"] = 1
    settings.write_text(json.dumps(doc))
    release("--keys", tmp_path / "keys", "trust", "refresh")  # ... until one is signed to last a second
    import time
    time.sleep(1.5)
    r = release.json("install", "--origin", origin, "-p", PRODUCT, "-v", "1.0.0", "--dest", tmp_path / "game2",
                     check=14)
    assert r["error"] == "METADATA_EXPIRED"


def test_a_signed_repository_refuses_to_chunk_without_its_keys_before_any_work(release, tmp_path):
    r = release.json("run", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1.1.0", check=2)
    assert r["error"] == "SIGNING_KEY_MISSING"
    assert not (tmp_path / "repo" / layout.inventory_key(PRODUCT, "1.1.0")).exists()
    r = release.json("--keys", tmp_path / "keys", "run", fixture_tar("1.1.0"), "-p", "other", "-v", "1", check=3)
    assert r["error"] == "NOT_FOUND" and "trust add-key --product other" in r["message"]


def test_rotating_the_release_key_keeps_players_installing(release, tmp_path):
    keys = tmp_path / "keys"
    origin = tmp_path / "repo"
    release("install", "--origin", origin, "-p", PRODUCT, "-v", "1.0.0", "--dest", tmp_path / "game",
            "--trust", tmp_path / "root.json")
    release("keys", "generate", "--out", tmp_path / "new", f"{PRODUCT}-2")
    r = release.json("--keys", keys, "trust", "rotate-key", "-p", PRODUCT, "--key", tmp_path / "new" / f"{PRODUCT}-2.key")
    assert set(r["commit"]["roles"]) == {"targets", f"product-{PRODUCT}"}
    (keys / f"{PRODUCT}.key").unlink()  # the old key is gone from the build machine
    (tmp_path / "new" / f"{PRODUCT}-2.key").rename(keys / f"{PRODUCT}-2.key")
    release("--keys", keys, "run", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1.1.0", "--diff-last", "1")
    release("--keys", keys, "promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "stable")
    u = release.json("update", "--origin", origin, "--dest", tmp_path / "game", "-c", "stable")
    assert u["to_version"] == "1.1.0"
    status = {r["role"]: r for r in release.json("trust", "status")["roles"]}
    assert len(status[f"product-{PRODUCT}"]["keyids"]) == 1


def test_channels_roll_back_as_new_higher_pointers(release, tmp_path):
    keys = tmp_path / "keys"
    release("--keys", keys, "run", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1.1.0")
    release("--keys", keys, "promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "stable")
    back = release.json("--keys", keys, "rollback", "-p", PRODUCT, "-c", "stable")
    assert (back["version"], back["serial"]) == ("1.0.0", 3)
    assert [(m["serial"], m["action"], m["version"]) for m in back["history"]] == [
        (3, "rollback", "1.0.0"), (2, "promote", "1.1.0"), (1, "promote", "1.0.0")]
    listed = release.json("channels", "-p", PRODUCT)["channels"]
    assert [(c["channel"], c["version"], c["serial"]) for c in listed] == [("stable", "1.0.0", 3)]
    r = release.json("install", "--origin", tmp_path / "repo", "-p", PRODUCT, "-c", "stable", "--dest",
                     tmp_path / "game", "--trust", tmp_path / "root.json")
    assert r["version"] == "1.0.0"
    assert release("--keys", keys, "rollback", "-p", PRODUCT, "-c", "stable", "--to", "9.9", check=3)


def test_a_tuf_client_that_is_not_depot_verifies_what_depot_published(release, tmp_path):
    from tuf.ngclient import Updater

    (tmp_path / "tuf-client").mkdir()
    with StaticOrigin(tmp_path / "repo") as origin:
        updater = Updater(str(tmp_path / "tuf-client"), f"{origin.url}/metadata/", str(tmp_path / "tuf-client"),
                          f"{origin.url}/", bootstrap=(tmp_path / "root.json").read_bytes())
        updater.refresh()
        key = layout.manifest_key(PRODUCT, "1.0.0")
        info = updater.get_targetinfo(key)
        path = updater.download_target(info, str(tmp_path / "tuf-client" / "manifest.json"))
    assert Path(path).read_bytes() == (tmp_path / "repo" / key).read_bytes()
    assert updater.get_targetinfo(layout.channel_key(PRODUCT, "stable")) is not None
    assert updater.get_targetinfo(layout.manifest_key(PRODUCT, "9.9.9")) is None
