"""The key life and a player's trust, through the depot command as release engineers and
players run it; and what depot publishes, read by a TUF client that is not depot."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from helpers import DEPOT, tree_snapshot
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions, fixture_tar
from pipeline import layout
from pipeline.formats import manifest
from depot_testing.http_origins import StaticOrigin
from pipeline.trust.keys import generate, load_signer


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


@pytest.fixture(scope="module")
def made_release(tmp_path_factory) -> Path:
    """A signed repository made the way the README says: keys, root, a product key, a
    build run and promoted (made once; each test gets a copy from ``release``)."""
    tmp_path = tmp_path_factory.mktemp("release")
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
    return tmp_path


@pytest.fixture
def release(made_release, tmp_path):
    """A private copy of the release in ``tmp_path`` (keys, offline root keys, the
    repository, root.json), and the depot command working on it."""
    shutil.copytree(made_release, tmp_path, dirs_exist_ok=True)
    return Depot(tmp_path)


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
        doc = manifest.decode(f.read_bytes())  # a file's executable bit dropped: valid, but not what was signed
        doc["entries"]["executable"] = doc["entries"]["executable"].replace("1", "0", 1)
        f.write_bytes(manifest.encode(doc))
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


# -- trust init: lifetimes, and only once ----------------------------------------------------

DAY = 86400
DEFAULT_LIFETIMES = {"root": 365 * DAY, "targets": 365 * DAY, "product": 90 * DAY, "snapshot": 7 * DAY,
                     "timestamp": 1 * DAY}


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> dict[str, tuple[Path, dict[str, str], tuple[float, float]]]:
    """Two repositories with a chunked build, each given a root of trust with some
    `--expires` and the defaults for the rest, then a product key and its documents signed:
    name -> (base, the lifetimes asked for, when their signing began and ended)."""
    base = tmp_path_factory.mktemp("initialised")
    generate(base / "keys", ["root", "targets", "snapshot", "timestamp", PRODUCT])
    chunk_fixture_versions(base / "built" / "repo", versions=["1.0.0"])
    made = {}
    for name, expires in (("a", {"root": "730d", "timestamp": "90m"}),
                          ("b", {"targets": "400d", "product": "30d", "snapshot": "36h"})):
        shutil.copytree(base / "built", base / name)
        depot = Depot(base / name)
        started = time.time()
        depot("trust", "init", "--root-key", base / "keys" / "root.key", "--targets-key", base / "keys" / "targets.key",
              "--snapshot-key", base / "keys" / "snapshot.key", "--timestamp-key", base / "keys" / "timestamp.key",
              *[a for role, d in expires.items() for a in ("--expires", f"{role}={d}")])
        depot("--keys", base / "keys", "trust", "add-key", "-p", PRODUCT, "--key", base / "keys" / f"{PRODUCT}.pub")
        depot("--keys", base / "keys", "trust", "sign", "-p", PRODUCT)
        made[name] = (base / name, expires, (started, time.time()))
    return made


def test_trust_init_sets_each_roles_lifetime_and_defaults_the_others(initialised):
    seconds = {"m": 60, "h": 3600, "d": DAY}
    for base, expires, (started, ended) in initialised.values():
        wanted = {**DEFAULT_LIFETIMES, **{role: int(d[:-1]) * seconds[d[-1]] for role, d in expires.items()}}
        assert json.loads((base / "repo" / "trust.json").read_text())["lifetimes"] == wanted
        roles = {r["role"]: r for r in Depot(base).json("trust", "status")["roles"]}
        assert set(roles) == {"root", "targets", "snapshot", "timestamp", f"product-{PRODUCT}"}
        for role, r in roles.items():
            lifetime = wanted["product" if role.startswith("product-") else role]
            expiry = datetime.datetime.fromisoformat(r["expires"]).timestamp()
            assert int(started) + lifetime <= expiry <= ended + lifetime, (role, r["expires"])


def test_trust_init_is_refused_where_there_is_a_root_of_trust(initialised, tmp_path):
    base = initialised["a"][0]
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    before = tree_snapshot(tmp_path / "repo")
    keys = base.parent / "keys"
    keys_of_another = tmp_path / "other-keys"
    generate(keys_of_another, ["root", "targets", "snapshot", "timestamp"])
    for k in (keys, keys_of_another):  # the same keys again, or new ones: never a second root
        r = Depot(tmp_path).json("trust", "init", "--root-key", k / "root.key", "--targets-key", k / "targets.key",
                                 "--snapshot-key", k / "snapshot.key", "--timestamp-key", k / "timestamp.key",
                                 "--expires", "timestamp=1h", check=6)
        assert r["error"] == "VERSION_CONFLICT" and "signed already" in r["message"]
        assert tree_snapshot(tmp_path / "repo") == before


# -- a product's keys: revoking one, re-signing what is about to expire -------------------------


def _role_metadata(repo: Path, role: str) -> Path:
    return max(repo.glob(f"metadata/*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))


def test_revoking_a_key_keeps_the_products_other_keys(release, tmp_path):
    from tuf.api.metadata import Metadata

    keys = tmp_path / "keys"
    old = json.loads((keys / f"{PRODUCT}.pub").read_text())["keyid"]
    new = generate(tmp_path / "new", [f"{PRODUCT}-2"])[0]
    (tmp_path / "new" / f"{PRODUCT}-2.key").rename(keys / f"{PRODUCT}-2.key")  # the build machine holds both
    release("--keys", keys, "trust", "add-key", "-p", PRODUCT, "--key", new.public)

    def product_keys() -> list[str]:
        return {r["role"]: r for r in release.json("trust", "status")["roles"]}[f"product-{PRODUCT}"]["keyids"]

    assert product_keys() == sorted([old, new.keyid])
    r = release.json("--keys", keys, "trust", "revoke-key", "-p", PRODUCT, "--key", keys / f"{PRODUCT}.pub")
    assert set(r["commit"]["roles"]) == {"targets", f"product-{PRODUCT}"}
    assert product_keys() == [new.keyid]
    role = _role_metadata(tmp_path / "repo", f"product-{PRODUCT}")
    assert set(Metadata.from_bytes(role.read_bytes()).signatures) == {new.keyid}  # re-signed by the key that stays
    installed = release.json("install", "--origin", tmp_path / "repo", "-p", PRODUCT, "-c", "stable", "--dest",
                             tmp_path / "game", "--trust", tmp_path / "root.json")
    assert installed["version"] == "1.0.0"

    md = Metadata.from_bytes(role.read_bytes())  # what the revoked key signs from now on: refused
    md.signatures.clear()
    md.sign(load_signer(keys / f"{PRODUCT}.key"))
    role.write_bytes(md.to_bytes())
    release.env["DEPOT_DATA_DIR"] = str(tmp_path / "another-player")
    r = release.json("install", "--origin", tmp_path / "repo", "-p", PRODUCT, "-c", "stable", "--dest",
                     tmp_path / "game-2", "--trust", tmp_path / "root.json", check=13)
    assert r["error"] == "METADATA_SIGNATURE_INVALID" and f"product-{PRODUCT}" in r["message"]
    assert not (tmp_path / "game-2").exists()


def test_refresh_re_signs_the_roles_within_half_their_lifetime_and_only_those(release, tmp_path):
    keys, repo = tmp_path / "keys", tmp_path / "repo"

    def status() -> dict:
        return {r["role"]: (r["version"], r["expires"]) for r in release.json("trust", "status")["roles"]}

    def lifetimes(**changes) -> None:
        doc = json.loads((repo / "trust.json").read_text())
        doc["lifetimes"].update(changes)
        (repo / "trust.json").write_text(json.dumps(doc))

    role = f"product-{PRODUCT}"
    before = status()
    r = release.json("--keys", keys, "trust", "refresh")["commit"]
    assert r["roles"] == {}  # nothing is within half its lifetime: only a new snapshot and timestamp
    assert r["snapshot_version"] == before["snapshot"][0] + 1 and r["timestamp_version"] == before["timestamp"][0] + 1

    lifetimes(product=200 * DAY)  # signed for 90 days: now within half of 200
    started = time.time()
    assert release.json("--keys", keys, "trust", "refresh")["commit"]["roles"] == {role: before[role][0] + 1}
    after = status()
    assert after["targets"] == before["targets"] and after["root"] == before["root"]
    expiry = datetime.datetime.fromisoformat(after[role][1]).timestamp()
    assert int(started) + 200 * DAY <= expiry <= time.time() + 200 * DAY

    lifetimes(product=90 * DAY, targets=800 * DAY)  # the product's new signature is far from expiry now
    assert release.json("--keys", keys, "trust", "refresh")["commit"]["roles"] == {"targets": before["targets"][0] + 1}
    assert status()[role] == after[role]


# -- the player's data folder ---------------------------------------------------------------


def test_the_players_data_folder_is_under_xdg_data_home_else_home(release, tmp_path):
    root = (tmp_path / "root.json").read_bytes()
    env = {k: v for k, v in release.env.items() if k not in ("DEPOT_DATA_DIR", "XDG_DATA_HOME", "DEPOT_TRUST")}

    def install(dest: str, **more) -> None:
        p = subprocess.run(DEPOT + ["install", "--origin", str(tmp_path / "repo"), "--trust", str(tmp_path / "root.json"),
                                    "-p", PRODUCT, "-v", "1.0.0", "--dest", str(tmp_path / dest)],
                           capture_output=True, text=True, cwd=tmp_path, env={**env, **more})
        assert p.returncode == 0, p.stderr

    def roots(data: Path) -> list[bytes]:
        return [p.read_bytes() for p in (data / "trust").glob("*/root.json")]

    install("game-1", XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    assert roots(tmp_path / "xdg" / "depot") == [root]
    assert not (tmp_path / "home").exists()
    install("game-2", HOME=str(tmp_path / "home"))
    assert roots(tmp_path / "home" / ".local" / "share" / "depot") == [root]
    assert not (tmp_path / "player-data").exists()


def test_a_product_with_a_key_and_nothing_signed_yet_is_not_signed_not_an_attack(tmp_path):
    """`trust add-key` delegates the product's documents; its own metadata appears with its
    first signed documents. Until then an install finds nothing signed (TARGET_MISMATCH,
    saying what to do), not forged metadata."""
    depot = Depot(tmp_path)
    keys = tmp_path / "keys"
    depot("keys", "generate", "--out", keys, "root", "targets", "snapshot", "timestamp", PRODUCT)
    depot("trust", "init", "--root-key", keys / "root.key", "--targets-key", keys / "targets.key",
          "--snapshot-key", keys / "snapshot.key", "--timestamp-key", keys / "timestamp.key")
    depot("--keys", keys, "trust", "add-key", "-p", PRODUCT, "--key", keys / f"{PRODUCT}.pub")
    depot("trust", "root", "-o", tmp_path / "root.json")
    install = ("install", "-p", PRODUCT, "-v", "1.0.0", "--dest", tmp_path / "game", "--origin", tmp_path / "repo",
               "--trust", tmp_path / "root.json")
    p = depot(*install, check=16)
    assert "[TARGET_MISMATCH]" in p.stderr and f"depot trust sign -p {PRODUCT}" in p.stderr, p.stderr
    depot("--keys", keys, "run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0")
    depot(*install)
