"""A manifest that names an entry ingest would refuse (a link to an absolute path or out of
the game directory, an entry below a link, a path into depot's own state, in any letter
case) is refused by
install, update and repair before anything is written: UNSAFE_ENTRY, the entry named.
The manifests are crafted in an unsigned repository, as a leaked release key or
``--allow-unsigned`` would let an origin serve them."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import DEPOT, ROOT, everything
from pipeline import layout
from pipeline.formats.manifest import FileEntry, Manifest
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions


def _link(path: str, target: str) -> FileEntry:
    return FileEntry(path, "symlink", target=target)


def _file_at(entries: tuple[FileEntry, ...], path: str) -> FileEntry:
    """An empty file at ``path``."""
    return FileEntry(path, "file", 0, False, hashlib.sha256(b"").hexdigest())


# (id, entries to add, what the message must name)
UNSAFE = [
    ("absolute-link", lambda es: [_link("evil", "/etc")], "'evil' -> '/etc'"),
    ("link-up", lambda es: [_link("up", "../../x")], "'up' -> '../../x'"),
    ("link-through-link", lambda es: [_link("here", "."), _link("out", "here/..")], "'out' -> 'here/..'"),
    ("below-a-link", lambda es: [_file_at(es, "starfall.sh/x")], "'starfall.sh/x'"),
    ("depot-state", lambda es: [_file_at(es, ".depot/installed.json")], "'.depot/installed.json'"),
    # a case-insensitive file system (NTFS, APFS) takes these for .depot/
    ("depot-state-upper-case", lambda es: [_file_at(es, ".DEPOT/x")], "'.DEPOT/x'"),
    ("depot-state-trailing-dot", lambda es: [_file_at(es, ".Depot./x")], "'.Depot./x'"),
]


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unsafe") / "repo"
    chunk_fixture_versions(root, versions=["1.0.0", "1.1.0"])
    return root


def _tamper(repo: Path, version: str, add) -> None:
    """Rewrite a version's manifest with the entries ``add`` makes."""
    path = repo / layout.manifest_key(PRODUCT, version)
    m = Manifest.from_bytes(path.read_bytes(), str(path))
    entries = sorted([*m.entries, *add(m.entries)], key=lambda e: e.path)
    path.write_bytes(Manifest(m.product, m.version, m.params, entries, m.pack_below).to_bytes())


def _depot(*args) -> subprocess.CompletedProcess:
    return subprocess.run(DEPOT + ["--json", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def _assert_refused(p: subprocess.CompletedProcess, names: str) -> None:
    assert p.returncode == 5, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    error = json.loads(p.stdout)
    assert error["error"] == "UNSAFE_ENTRY" and names in error["message"], error
    assert "/manifest.json:" in error["message"]  # and the manifest that names it


@pytest.mark.parametrize("add, names", [c[1:] for c in UNSAFE], ids=[c[0] for c in UNSAFE])
def test_install_refuses_an_unsafe_manifest_and_writes_nothing(clean_repo, tmp_path, add, names):
    repo = tmp_path / "repo"
    shutil.copytree(clean_repo, repo)
    _tamper(repo, "1.0.0", add)
    p = _depot("install", "--allow-unsigned", "--origin", repo, "-p", PRODUCT, "-v", "1.0.0", "--dest",
               tmp_path / "game")
    _assert_refused(p, names)
    assert not (tmp_path / "game").exists()


# command: (what follows --dest, the version whose manifest is tampered with)
COMMANDS = {
    "update": (["--to", "1.1.0"], "1.1.0"),
    "repair": ([], "1.0.0"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("add, names", [c[1:] for c in UNSAFE], ids=[c[0] for c in UNSAFE])
def test_update_and_repair_refuse_an_unsafe_manifest_and_change_nothing(clean_repo, tmp_path, add, names, command):
    more, tampered = COMMANDS[command]
    repo = tmp_path / "repo"
    shutil.copytree(clean_repo, repo)
    game = tmp_path / "game"
    assert _depot("install", "--allow-unsigned", "--origin", repo, "-p", PRODUCT, "-v", "1.0.0",
                  "--dest", game).returncode == 0
    if command == "repair":
        (game / "README.txt").unlink()  # something for the repair to do
    _tamper(repo, tampered, add)
    before = everything(game)
    p = _depot(command, "--allow-unsigned", "--origin", repo, "--dest", game, *more)
    _assert_refused(p, names)
    assert everything(game) == before  # not even an empty staging directory


@pytest.mark.parametrize("name", [".DEPOT", ".Depot", ".depot."])
def test_ingest_refuses_depots_state_name_in_any_letter_case(tmp_path, name):
    """The check the client runs is ingest's: a build with such an entry is never stored."""
    import io
    import tarfile

    build = tmp_path / "build.tar"
    with tarfile.open(build, "w") as tf:
        info = tarfile.TarInfo(f"{name}/x")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    p = _depot("--repo", tmp_path / "repo", "ingest", build, "-p", PRODUCT, "-v", "1.0.0")
    assert p.returncode == 5, p.stderr
    error = json.loads(p.stdout)
    assert error["error"] == "UNSAFE_ENTRY" and f"'{name}/x'" in error["message"], error
    assert not (tmp_path / "repo" / "products").exists()
