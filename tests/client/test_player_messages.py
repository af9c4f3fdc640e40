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

from helpers import DEPOT, ROOT, everything
from pipeline import layout
from pipeline.testing.fixtures import PRODUCT, signed_repository


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
        f.write_bytes(f.read_bytes().replace(b'"executable":true', b'"executable":false', 1))
    refused(depot(tmp_path, "update", "--origin", origin, "--dest", game, "--to", "1.1.0"), 16, "TARGET_MISMATCH",
            key)
    assert everything(game) == before


@contextlib.contextmanager
def immutable(path: Path):
    """``path`` made immutable (``chattr +i``: a mode bit does not stop root)."""
    p = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {p.stderr.strip()}")
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
