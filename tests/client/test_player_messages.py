"""What a player is told, through the depot command, when a name is mistyped, the game
directory cannot be written, or an update is refused: the documented code, one line naming
the input, and the directory as it was (not even an empty staging directory)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import DEPOT, ROOT, everything, unavailable
from pipeline import layout
from pipeline.formats import manifest
from depot_testing.fixtures import PRODUCT, signed_repository


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> Path:
    """A signed repository (1.0.0, 1.1.0, stable -> 1.1.0); each test copies it."""
    return signed_repository(tmp_path_factory.mktemp("messages"))


@pytest.fixture
def origin(signed, tmp_path) -> Path:
    shutil.copytree(signed / "repo", tmp_path / "repo")
    return tmp_path / "repo"


def depot(tmp: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEPOT_DATA_DIR": str(tmp / "player-data")}
    return subprocess.run(DEPOT + ["--json", *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env)


def refused(p: subprocess.CompletedProcess, exit_code: int, code: str, names: str) -> dict:
    assert p.returncode == exit_code, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    error = json.loads(p.stdout)
    assert error["error"] == code and names in error["message"], error
    assert names in p.stderr
    return error


def trust(origin: Path) -> list:
    return ["--trust", origin / "metadata" / "1.root.json", "--origin", origin]


@pytest.mark.parametrize("name, args", [
    ("channel", ["-p", PRODUCT, "-c", "stabel"]),
    ("version", ["-p", PRODUCT, "-v", "1.0.1"]),
    ("product", ["-p", "starfal", "-v", "1.0.0"]),
])
def test_a_mistyped_name_at_install_is_not_found_not_tampering(origin, tmp_path, name, args):
    p = depot(tmp_path, "install", *trust(origin), *args, "--dest", tmp_path / "game")
    typo = args[-1]
    error = refused(p, 3, "NOT_FOUND", typo)
    assert "not found" in error["message"]
    assert not (tmp_path / "game").exists()


def test_a_refused_update_leaves_the_directory_as_it_was(origin, tmp_path):
    """A target that is not signed (NOT_FOUND), then one whose bytes were tampered with
    (TARGET_MISMATCH): neither run creates anything in the game directory."""
    game = tmp_path / "game"
    assert depot(tmp_path, "install", *trust(origin), "-p", PRODUCT, "-v", "1.0.0", "--dest", game).returncode == 0
    before = everything(game)

    refused(depot(tmp_path, "update", "--origin", origin, "--dest", game, "--to", "9.9"), 3, "NOT_FOUND", "9.9")
    assert everything(game) == before

    key = layout.manifest_key(PRODUCT, "1.1.0")
    for f in (origin / key).parent.glob("*manifest.json"):  # the plain and the hashed copy
        doc = manifest.decode(f.read_bytes())  # a file's executable bit dropped: valid, but not what was signed
        doc["entries"]["executable"] = doc["entries"]["executable"].replace("1", "0", 1)
        f.write_bytes(manifest.encode(doc))
    refused(depot(tmp_path, "update", "--origin", origin, "--dest", game, "--to", "1.1.0"), 16, "TARGET_MISMATCH",
            key)
    assert everything(game) == before


@contextlib.contextmanager
def immutable(path: Path):
    """``path`` made immutable (``chattr +i``: a mode bit does not stop root)."""
    p = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        unavailable(f"chattr +i does not work here: {p.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("where", ["dest", "parent"])
def test_an_unwritable_dest_is_a_clear_error_naming_it(origin, tmp_path, where):
    """The game directory itself cannot be written, or it does not exist and its parent
    cannot be written: STORE_UNAVAILABLE naming it, no traceback."""
    parent = tmp_path / "games"
    parent.mkdir()
    game = parent / "game"
    if where == "dest":
        game.mkdir()
    with immutable(game if where == "dest" else parent):
        p = depot(tmp_path, "install", *trust(origin), "-p", PRODUCT, "-v", "1.0.0", "--dest", game)
        refused(p, 9, "STORE_UNAVAILABLE", str(game))
        assert [p.name for p in parent.iterdir()] == (["game"] if where == "dest" else [])
        assert where == "parent" or list(game.iterdir()) == []


def _installed_1_0_0(planned: Path, tmp_path: Path) -> Path:
    game = tmp_path / "game"
    p = depot(tmp_path, "install", "--allow-unsigned", "--origin", planned, "-p", PRODUCT, "-v", "1.0.0", "--dest", game)
    assert p.returncode == 0, p.stderr
    return game


def _outside_staging(game: Path) -> dict:
    """The directory and depot's state, but not the staged files kept for the next try."""
    return {k: v for k, v in everything(game).items() if not k.startswith(".depot/staging")}


def test_an_update_that_cannot_write_depots_state_fails_cleanly_and_keeps_the_version(planned, tmp_path):
    """A first update fails on an immutable `bin` (exit 9, staging kept); the retry meets a
    `.depot/` that cannot be written: STORE_UNAVAILABLE naming the path, no traceback, and
    the directory still holds 1.0.0."""
    game = _installed_1_0_0(planned, tmp_path)
    update = ["update", "--allow-unsigned", "--origin", planned, "--dest", game, "--to", "1.3.0"]
    with immutable(game / "bin"):
        refused(depot(tmp_path, *update), 9, "STORE_UNAVAILABLE", str(game / "bin"))
    assert (game / ".depot" / "staging").is_dir()
    before = _outside_staging(game)
    with immutable(game / ".depot"):
        refused(depot(tmp_path, *update), 9, "STORE_UNAVAILABLE", str(game / ".depot" / "backup"))
    assert _outside_staging(game) == before
    p = depot(tmp_path, "verify", "--dest", game)
    assert p.returncode == 0 and json.loads(p.stdout)["version"] == "1.0.0", p.stdout
    assert depot(tmp_path, *update).returncode == 0  # writable again: the update goes through


def test_a_failed_swap_leaves_the_directory_exactly_as_it_was(planned, tmp_path):
    """The record cannot be written, at the very end of the swap: the previous version comes
    back whole, without the new version's empty directories or any temporary."""
    game = _installed_1_0_0(planned, tmp_path)
    before = _outside_staging(game)
    with immutable(game / ".depot" / "installed.json"):
        p = depot(tmp_path, "update", "--allow-unsigned", "--origin", planned, "--dest", game, "--to", "1.3.0")
        refused(p, 9, "STORE_UNAVAILABLE", "installed.json")
    assert _outside_staging(game) == before
    verified = depot(tmp_path, "verify", "--dest", game)
    assert verified.returncode == 0, verified.stdout
    report = json.loads(verified.stdout)
    assert (report["version"], report["missing"], report["damaged"], report["unexpected"]) == ("1.0.0", [], [], [])


@pytest.mark.parametrize("command", ["install", "update", "repair"])
@pytest.mark.parametrize("option, value", [("--max-rate", "0"), ("--timeout", "nan"), ("--timeout", "inf"),
                                           ("--timeout", "-inf"), ("--timeout", "0")])
def test_a_numeric_option_that_is_not_finite_and_positive_is_a_usage_error(tmp_path, command, option, value):
    args = {"install": ["-p", PRODUCT, "-v", "1.0.0"], "update": ["--to", "1.0.0"], "repair": []}[command]
    p = depot(tmp_path, command, "--origin", tmp_path / "repo", "--dest", tmp_path / "game", *args, option, value)
    assert p.returncode == 2, p.stderr
    error = json.loads(p.stdout)
    assert error["error"] == "USAGE" and f"'{option}'" in error["message"], error
    assert not (tmp_path / "game").exists()


def _break_timestamp_signature(repo: Path) -> None:
    path = repo / layout.metadata_key("timestamp")
    doc = json.loads(path.read_bytes())
    doc["signed"]["version"] += 5
    path.write_bytes(json.dumps(doc).encode())


def test_install_passes_over_an_origin_whose_metadata_is_refused(signed, origin, tmp_path):
    """The first --origin's timestamp no longer matches its signature: the second origin's
    metadata is used and the install succeeds; with both broken, the command fails with
    METADATA_SIGNATURE_INVALID (13), one line naming each origin."""
    from depot_testing.http_origins import StaticOrigin

    bad = tmp_path / "bad"
    shutil.copytree(origin, bad)
    _break_timestamp_signature(bad)
    root = origin / "metadata" / "1.root.json"
    with StaticOrigin(bad) as http:
        p = depot(tmp_path, "install", "--trust", root, "--origin", http.url, "--origin", origin, "-p", PRODUCT,
                  "-c", "stable", "--dest", tmp_path / "game")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["version"] == "1.1.0"
        _break_timestamp_signature(origin)
        p = depot(tmp_path, "install", "--origin", http.url, "--origin", origin, "-p", PRODUCT, "-c", "stable",
                  "--dest", tmp_path / "other")
        error = refused(p, 13, "METADATA_SIGNATURE_INVALID", f"{http.url}: ")
        assert f"{origin}: " in error["message"]
    assert not (tmp_path / "other").exists()


def test_ctrl_c_stops_an_install_waiting_on_a_low_max_rate_and_verify_says_to_run_it_again(origin, tmp_path):
    """Ctrl-C during a first install at a rate that would take an hour stops it at once
    (the downloads waiting their share stop waiting); its files stay in staging, and
    verify says an install was interrupted there, not only that nothing is installed."""
    import signal
    import time

    dest = tmp_path / "game"
    staging = dest / ".depot" / "staging"
    proc = subprocess.Popen(DEPOT + ["install", *trust(origin), "-p", PRODUCT, "-v", "1.0.0", "--dest", dest,
                                     "--max-rate", "1KiB"],
                            cwd=ROOT, env={**os.environ, "DEPOT_DATA_DIR": str(tmp_path / "player-data")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not staging.is_dir():  # made once the version passed every check, before any download
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.communicate(timeout=60)[1] == "depot: error: interrupted [INTERRUPTED]\n"
    assert proc.returncode == 130
    refused(depot(tmp_path, "verify", "--dest", dest), 3, "NOT_FOUND",
            f"{dest}: no depot installation here (no {dest / '.depot' / 'installed.json'}; an install was "
            f"interrupted here, its files wait in {staging}: run it again to finish)")
