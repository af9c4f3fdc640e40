"""The reference client: install, verify and repair from local, S3 and HTTP origins, with
faults, failover, full disks, kills and damage."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from helpers import DEPOT, ROOT, assert_installed, fetcher, kill_when, tree
from depot_testing.fixtures import PRODUCT, VERSIONS
from pipeline.client.install import install
from pipeline.client.repair import repair
from pipeline.client.verify import verify
from pipeline.errors import CdnUnreachable, FileHashMismatch, InsufficientDiskSpace, NotFound, StoreUnavailable
from pipeline.formats import manifest
from pipeline.storage import open_store
from depot_testing.faulty_origin import FaultyOrigin
from depot_testing.http_origins import StaticOrigin


@pytest.mark.parametrize("version", VERSIONS)
def test_install_every_version_from_a_local_origin(published, build_dirs, tmp_path, version):
    r = install(fetcher(published), PRODUCT, version, tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs[version])
    assert r.files_written == r.files and r.bytes_reused == 0 and r.chunks_fetched > 0


def test_a_small_download_is_shared_out_so_that_every_job_has_requests(published, tmp_path):
    """Small chunks go to the download threads in groups (a task costs more than a small
    chunk), but never so few groups that some of ``jobs`` would have nothing to fetch."""
    from pipeline.client.assemble import Assembly
    from pipeline.client.game_dir import GameDir
    from pipeline.client.tree import Tree
    from pipeline.core.progress import ignore

    tree = Tree(manifest.load(open_store(str(published)), PRODUCT, "1.0.0"), "here")
    inst = GameDir(tmp_path / "game")
    inst.staging.mkdir(parents=True)
    job = Assembly(inst, tree, array("i", range(len(tree))), fetcher(published), ignore)
    needed = list(range(len(tree.chunks)))
    total = sum(c.size for c in tree.chunks)
    assert total < 4 << 20 and len(needed) > 16  # less than four groups of 1 MiB
    for jobs in (1, 2, 4):
        groups = list(job._groups(needed, jobs))
        assert [k for g in groups for k in g] == needed  # each chunk once, in manifest order
        assert len(groups) >= 2 * jobs  # about four a job, chunks being of uneven sizes


def test_install_from_http_and_s3_origins(published, build_dirs, tmp_path, s3, s3_bucket):
    with StaticOrigin(published) as http:
        install(fetcher(http.url), PRODUCT, "1.3.0", tmp_path / "http")
    assert_installed(tmp_path / "http", build_dirs["1.3.0"])

    fs, _ = s3.resolve(s3_bucket).filesystem()
    fs.put(str(published) + "/", f"{s3_bucket[5:]}/origin/", recursive=True)
    install(fetcher(f"{s3_bucket}/origin", locations=s3), PRODUCT, "1.1.0", tmp_path / "s3")
    assert_installed(tmp_path / "s3", build_dirs["1.1.0"])


def test_reinstalling_an_installed_version_writes_nothing(published, tmp_path):
    install(fetcher(published), PRODUCT, "1.0.0", tmp_path / "game")
    again = install(fetcher(published), PRODUCT, "1.0.0", tmp_path / "game")
    assert again.files_written == 0 and again.chunks_fetched == 0


def test_seed_and_existing_files_are_copied_not_downloaded(published, build_dirs, tmp_path):
    full = install(fetcher(published), PRODUCT, "1.1.0", tmp_path / "fresh")
    seeded = install(fetcher(published), PRODUCT, "1.1.0", tmp_path / "seeded", seeds=[build_dirs["1.0.0"]])
    assert_installed(tmp_path / "seeded", build_dirs["1.1.0"])
    m0 = manifest.load(open_store(str(published)), PRODUCT, "1.0.0")
    m1 = manifest.load(open_store(str(published)), PRODUCT, "1.1.0")
    shared = set(m0.unique_chunks()) & set(m1.unique_chunks())
    assert seeded.chunks_reused == len(shared)
    assert seeded.bytes_downloaded == sum(c.stored_size for i, c in m1.unique_chunks().items() if i not in shared)
    assert seeded.bytes_downloaded < full.bytes_downloaded

    # installing another version over an installed one reuses its files the same way
    over = install(fetcher(published), PRODUCT, "1.1.0", tmp_path / "over-old", seeds=[])
    assert over.chunks_fetched == len(m1.unique_chunks())
    install(fetcher(published), PRODUCT, "1.0.0", tmp_path / "upgrade")
    up = install(fetcher(published), PRODUCT, "1.1.0", tmp_path / "upgrade")
    assert up.bytes_downloaded == seeded.bytes_downloaded
    assert_installed(tmp_path / "upgrade", build_dirs["1.1.0"])  # 1.0.0-only files removed


def test_another_product_is_not_installed_over_an_installed_one(published, tmp_path):
    import shutil

    from pipeline.errors import DestinationConflict

    other = tmp_path / "other-origin"
    shutil.copytree(published, other)
    (other / "products" / PRODUCT).rename(other / "products" / "moonfall")
    for m in (other / "products" / "moonfall" / "versions").glob("*/manifest.json"):
        m.write_bytes(manifest.encode({**manifest.decode(m.read_bytes()), "product": "moonfall"}))
    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    with pytest.raises(DestinationConflict) as err:
        install(fetcher(other), "moonfall", "1.0.0", dest)
    assert err.value.exit_code == 6 and "starfall" in str(err.value)
    assert verify(dest).intact


def test_install_by_channel(published, build_dirs, tmp_path):
    from pipeline.client.install import resolve_version

    f = fetcher(published)
    version = resolve_version(f, PRODUCT, "stable")
    assert version == "1.2.0"
    install(f, PRODUCT, version, tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.2.0"])
    with pytest.raises(NotFound, match="nightly"):
        resolve_version(f, PRODUCT, "nightly")


def test_failover_to_the_next_origin(published, build_dirs, tmp_path):
    with FaultyOrigin(published) as dead, StaticOrigin(published) as alive:
        dead.fail_all = True
        f = fetcher(dead.url, alive.url, retries=1)
        r = install(f, PRODUCT, "1.2.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.2.0"])
    by_url = {o["url"]: o for o in r.origins}
    assert by_url[dead.url]["chunks"] == 0 and by_url[alive.url]["chunks"] == r.chunks_fetched + 1  # + manifest
    # the dead origin was given up on, not retried for every chunk
    assert by_url[dead.url]["failures"] < r.chunks_fetched


@pytest.mark.parametrize("fault", ["reset", "500", "truncate", "corrupt", "wrong", "stall"])
def test_transient_faults_are_retried_to_a_byte_exact_install(published, build_dirs, tmp_path, fault):
    with FaultyOrigin(published, faults={fault: 0.3}, seed=1, stall_seconds=2.0, only_prefix="/chunks/") as origin:
        r = install(fetcher(origin.url, retries=6, timeout=0.5), PRODUCT, "1.3.0", tmp_path / "game", jobs=8)
        assert origin.fault_counts.get(fault, 0) > 0
    assert r.retries >= origin.fault_counts[fault]
    assert_installed(tmp_path / "game", build_dirs["1.3.0"])


def _only_correct_files(dest: Path, m) -> None:
    """Whatever an interrupted install left in place is complete and correct."""
    for f in m.files:
        p = dest / f.path
        if p.exists():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.hash_sha256, f.path


def test_permanent_failures_end_with_the_service_codes(published, tmp_path):
    m = manifest.load(open_store(str(published)), PRODUCT, "1.0.0")
    with FaultyOrigin(published, faults={"corrupt": 1.0}, only_prefix="/chunks/") as bad:
        with pytest.raises(FileHashMismatch):
            install(fetcher(bad.url, retries=1), PRODUCT, "1.0.0", tmp_path / "a")
        _only_correct_files(tmp_path / "a", m)
        bad.fail_all = True
        with pytest.raises(CdnUnreachable):
            install(fetcher(bad.url, retries=1), PRODUCT, "1.0.0", tmp_path / "b")
    (tmp_path / "empty-origin").mkdir()
    with StaticOrigin(tmp_path / "empty-origin") as empty:
        with pytest.raises(NotFound):
            install(fetcher(empty.url), PRODUCT, "1.0.0", tmp_path / "c")


def test_a_full_disk_is_refused_before_anything_is_written(published, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.fail("this test mounts a small tmpfs: run the suite as root (CI does)")
    try:
        with pytest.raises(InsufficientDiskSpace) as err:
            install(fetcher(published), PRODUCT, "1.0.0", small / "game")
        assert err.value.exit_code == 11 and "needs" in str(err.value)
        assert tree(small / "game") == {}
    finally:
        subprocess.run(["umount", str(small)], check=True)


# -- verify and repair -------------------------------------------------------------------

DAMAGE = {
    "truncated": lambda d: (d / "data/assets.pak").write_bytes((d / "data/assets.pak").read_bytes()[:1000]),
    "flipped": lambda d: _flip(d / "bin/starfall", 200_000),
    "deleted": lambda d: (d / "config/settings.ini").unlink(),
    "replaced-by-dir": lambda d: ((d / "README.txt").unlink(), (d / "README.txt").mkdir()),
    "mode": lambda d: os.chmod(d / "bin/starfall", 0o644),
    "unreadable": lambda d: os.chmod(d / "LICENSE.txt", 0o000),
    "link-retargeted": lambda d: ((d / "starfall.sh").unlink(), os.symlink("README.txt", d / "starfall.sh")),
    "empty-dir-removed": lambda d: (d / "saves").rmdir(),
    "parent-replaced-by-link": lambda d: (shutil.rmtree(d / "config"), os.symlink("data", d / "config")),
}
EXPECTED = {
    "truncated": {"data/assets.pak"},
    "flipped": {"bin/starfall"},
    "deleted": {"config/settings.ini"},
    "replaced-by-dir": {"README.txt"},
    "mode": {"bin/starfall"},
    "unreadable": {"LICENSE.txt"},
    "link-retargeted": {"starfall.sh"},
    "empty-dir-removed": {"saves"},
    "parent-replaced-by-link": {"config/keybinds.cfg", "config/settings.ini"},
}


def _flip(path: Path, offset: int) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # silent corruption: same size, same mtime


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_verify_finds_and_repair_fixes_each_kind_of_damage(published, build_dirs, tmp_path, damage):
    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    DAMAGE[damage](dest)
    report = verify(dest)
    assert report.broken() == EXPECTED[damage]
    r = repair(fetcher(published), dest)
    assert r.after.intact and set(r.to_dict()["repaired"]) == EXPECTED[damage]
    assert_installed(dest, build_dirs["1.0.0"])


def test_repair_downloads_only_the_damaged_chunks(published, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    m = manifest.load(open_store(str(published)), PRODUCT, "1.0.0")
    pak = m.entry("data/assets.pak")
    victim = next(c for c in pak.chunks if c.offset > 0)
    _flip(dest / pak.path, victim.offset + 5)
    r = repair(fetcher(published), dest)
    assert r.install.chunks_fetched == 1 and r.install.bytes_downloaded == victim.stored_size
    assert r.install.files_written == 1


def test_fast_verify_and_unexpected_files(published, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    _flip(dest / "bin/starfall", 10)  # invisible to a fast check: same size and mtime
    (dest / "data/levels/level01.dat").write_bytes(b"rewritten")
    (dest / "mods").mkdir()
    (dest / "mods/cheat.dll").write_bytes(b"x")
    (dest / "notes.txt").write_bytes(b"x")
    fast = verify(dest, fast=True)
    assert fast.broken() == {"data/levels/level01.dat"}
    assert fast.unexpected == ["mods/", "notes.txt"]
    assert verify(dest).broken() == {"data/levels/level01.dat", "bin/starfall"}


def test_verify_outside_an_install_says_so(tmp_path):
    with pytest.raises(NotFound, match="no depot installation"):
        verify(tmp_path)


# -- the command, killed and resumed -----------------------------------------------------

def test_a_killed_install_resumes_to_a_byte_exact_directory(published, build_dirs, tmp_path):
    """SIGKILL a real install process at several points (its download rate limited so
    that it is mid-way), then resume until it completes. Chunks are not downloaded twice
    except those in flight at a kill."""
    dest = tmp_path / "game"
    jobs = 4
    with StaticOrigin(published) as origin:
        args = DEPOT + ["--json", "install", "--allow-unsigned", "--origin", origin.url, "-p", PRODUCT, "-v", "1.3.0", "--dest", str(dest),
                        "--jobs", str(jobs)]
        m = manifest.load(open_store(str(published)), PRODUCT, "1.3.0")
        unique = len(m.unique_chunks())

        def fetched(share: float):
            return lambda: sum(n for p, n in origin.requests_by_path.items() if p.startswith("/chunks/")) >= share * unique

        # killed once a fifth, then nearly half, then 70% of the chunks were asked for
        kills = kill_when(args + ["--max-rate", "512KiB"], [fetched(f) for f in (0.2, 0.45, 0.7)],
                          lambda: _only_correct_files(dest, m))
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        chunk_requests = sum(n for p, n in origin.requests_by_path.items() if p.startswith("/chunks/"))
    assert kills >= 2
    m = manifest.load(open_store(str(published)), PRODUCT, "1.3.0")
    assert chunk_requests <= len(m.unique_chunks()) + kills * jobs
    assert json.loads(done.stdout)["chunks_fetched"] < len(m.unique_chunks())
    assert_installed(dest, build_dirs["1.3.0"])
    assert not (dest / ".depot" / "staging").exists()


def test_cli_verify_and_repair_exit_codes(published, tmp_path):
    dest = tmp_path / "game"
    run = lambda *a: subprocess.run(DEPOT + list(map(str, a)), cwd=ROOT, capture_output=True, text=True)
    assert run("install", "--allow-unsigned", "--origin", published, "-p", PRODUCT, "-c", "stable", "--dest", dest).returncode == 0
    (dest / "README.txt").unlink()
    p = run("--json", "verify", "--dest", dest)
    assert p.returncode == 7 and json.loads(p.stdout.splitlines()[0])["missing"] == ["README.txt"]
    assert run("repair", "--allow-unsigned", "--origin", published, "--dest", dest).returncode == 0
    assert run("verify", "--dest", dest).returncode == 0
    assert run("install", "--allow-unsigned", "--origin", published, "-p", PRODUCT, "--dest", dest).returncode == 2


def test_a_failing_swap_puts_the_previous_version_back(published, build_dirs, tmp_path):
    """Upgrade 1.0.0 -> 1.1.0 where one file cannot be replaced (immutable): the swap
    fails half-way and every entry of 1.0.0 is back, verified."""
    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    stuck = dest / "config/settings.ini"  # changed in 1.1.0, after others in swap order
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.fail("this test makes a file immutable with chattr +i: run the suite as root on ext4 (CI does)")
    try:
        with pytest.raises(StoreUnavailable, match="cannot be replaced .*still holds the version"):
            install(fetcher(published), PRODUCT, "1.1.0", dest)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert_installed(dest, build_dirs["1.0.0"])
    assert not (dest / ".depot" / "swap.json").exists()
    # the staged 1.1.0 files were kept: the retry downloads nothing
    again = install(fetcher(published), PRODUCT, "1.1.0", dest)
    assert again.chunks_fetched == 0
    assert_installed(dest, build_dirs["1.1.0"])


KILLED_AT = """
import os, signal, sys
from pathlib import Path
from helpers import fetcher
from pipeline.client import game_dir
from pipeline.client.install import install

origin, product, version, dest, step, nth = sys.argv[1:]
reached = []

def die(at):
    if at == step:
        reached.append(at)
        if len(reached) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)  # no except or finally block runs

game_dir.fault_point = die
install(fetcher(origin), product, version, Path(dest))
"""


def install_killed_at(origin: Path, version: str, dest: Path, step: str, nth: int = 1) -> None:
    """Install ``version`` in a process SIGKILLed the ``nth`` time its swap reaches ``step``."""
    p = subprocess.run([sys.executable, "-c", KILLED_AT, str(origin), PRODUCT, version, str(dest), step, str(nth)],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"},
                       capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr  # it died there, it did not finish


def test_a_swap_cut_short_by_a_crash_is_undone_by_the_next_run(published, build_dirs, tmp_path):
    """The process is killed half-way through swapping 1.3.0 in (no chance to clean up): the
    next depot command on the directory finds the intent and puts 1.0.0 back."""
    from pipeline.client import game_dir

    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    (dest / "mods").write_bytes(b"a user's file where 1.3.0 needs a directory")
    # half-way: old entries set aside, two verified new files in place, the third about to move in
    install_killed_at(published, "1.3.0", dest, "place", 3)
    assert (dest / ".depot" / "swap.json").exists()

    with game_dir.GameDir(dest).locked():
        pass  # taking the lock recovers
    expected = tree(build_dirs["1.0.0"]) | {"mods": tree(dest)["mods"]}
    assert tree(dest) == expected and (dest / "mods").read_bytes().startswith(b"a user's file")
    assert verify(dest).intact
    install(fetcher(published), PRODUCT, "1.3.0", dest)
    assert verify(dest).intact


def test_a_first_install_killed_mid_swap_puts_its_directories_back_in_staging(published, build_dirs, tmp_path):
    """A first install moves whole directories in; killed after two of them, the next run
    takes them back to staging and installs from there without downloading a chunk."""
    dest = tmp_path / "game"
    install_killed_at(published, "1.0.0", dest, "place", 3)
    intent = json.loads((dest / ".depot" / "swap.json").read_text())
    assert intent["moved"] == ["bin", "config", "data"] and intent["staged"] == ["LICENSE.txt", "README.txt",
                                                                                 "launch.sh"]
    assert (dest / "bin").is_dir() and (dest / "config").is_dir()  # moved in before the kill
    again = install(fetcher(published), PRODUCT, "1.0.0", dest)
    assert (again.chunks_fetched, again.bytes_downloaded) == (0, 0)
    assert_installed(dest, build_dirs["1.0.0"])


def test_a_crash_between_the_manifest_and_the_record_leaves_the_previous_version(published, build_dirs, tmp_path):
    from pipeline.client import game_dir

    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    install_killed_at(published, "1.3.0", dest, "record")  # the new manifest is written, the record is not
    assert game_dir.GameDir(dest).manifest().version == "1.3.0"
    with game_dir.GameDir(dest).locked():
        pass  # taking the lock recovers
    assert game_dir.GameDir(dest).manifest().version == "1.0.0"
    files = lambda t: {k: v for k, v in t.items() if v[0] != "dir"}  # the swap's new directories stay, empty
    assert files(tree(dest)) == files(tree(build_dirs["1.0.0"])) and verify(dest).intact


def test_a_directory_another_depot_is_working_on_is_refused(published, tmp_path):
    from pipeline.client import game_dir

    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    with game_dir.GameDir(dest).locked():  # another depot process holds it
        p = subprocess.run(DEPOT + ["--json", "install", "--allow-unsigned", "--origin", str(published),
                                    "-p", PRODUCT, "-v", "1.1.0", "--dest", str(dest)],
                           capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 12 and json.loads(p.stdout)["error"] == "INSTALL_BUSY"
    assert verify(dest).version == "1.0.0"


# -- the install record, a moved directory, repair's exit code, the client's defaults ------

@pytest.mark.parametrize("damage", ["truncated", "not-the-schema"])
def test_a_damaged_install_record_trusts_nothing(published, build_dirs, tmp_path, damage):
    """A file changed without changing its size or mtime is trusted while the record is
    intact (that is what the record is for); once the record is damaged, every file is
    read again: the changed one is fixed, the others are found intact on disk."""
    m = manifest.load(open_store(str(published)), PRODUCT, "1.0.0")
    victim = next(c for c in m.entry("bin/starfall").chunks if c.offset <= 200_000 < c.offset + c.size)
    intact, damaged = tmp_path / "intact", tmp_path / "damaged"
    for dest in (intact, damaged):
        install(fetcher(published), PRODUCT, "1.0.0", dest)
        _flip(dest / "bin/starfall", 200_000)
    record = damaged / ".depot" / "installed.json"
    if damage == "truncated":
        record.write_bytes(record.read_bytes()[: len(record.read_bytes()) // 2])
    else:
        doc = json.loads(record.read_text())
        doc["mtime_ns"] = [1_700_000_000_000_000_000] * doc["files"]  # format 2 holds them in base64
        record.write_text(json.dumps(doc))

    trusting = install(fetcher(published), PRODUCT, "1.0.0", intact)
    assert trusting.files_written == 0 and not verify(intact).intact

    assert [d["reason"] for d in verify(damaged, fast=True).damaged] == ["modified since install"] * len(m.files)
    r = install(fetcher(published), PRODUCT, "1.0.0", damaged)
    assert (r.files_written, r.chunks_fetched, r.bytes_downloaded) == (len(m.files), 1, victim.stored_size)
    assert_installed(damaged, build_dirs["1.0.0"])
    assert verify(damaged, fast=True).intact  # a sound record again


def test_a_game_directory_moved_or_copied_whole_keeps_working(planned, build_dirs, tmp_path):
    from pipeline.client.update import update

    first = tmp_path / "first"
    install(fetcher(planned), PRODUCT, "1.0.0", first)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    os.rename(first, moved)
    copied = tmp_path / "copied"
    shutil.copytree(moved, copied, symlinks=True)  # with modes and mtimes, like cp -a
    for dest in (copied, moved):
        assert verify(dest).intact and verify(dest, fast=True).intact
        again = install(fetcher(planned), PRODUCT, "1.0.0", dest)
        assert (again.files_written, again.chunks_fetched) == (0, 0)  # the record holds in the new place
        r = update(fetcher(planned), dest, to_version="1.1.0")
        assert r.method == "delta" and r.patches_applied > 0
        assert_installed(dest, build_dirs["1.1.0"])
        if dest == copied:  # the copy is a directory of its own
            assert verify(moved).version == "1.0.0" and verify(moved).intact
    assert not first.exists()


class _DamagingOrigin(StaticOrigin):
    """An origin during whose first chunk download something else on the player's machine
    overwrites ``victim``."""

    def __init__(self, root, victim: Path):
        self.victim, self.damaged = victim, False
        super().__init__(root)

    def _serve(self, handler, path, head):
        if path.startswith("/chunks/") and not self.damaged:
            self.victim.write_bytes(b"overwritten\n")
            self.damaged = True
        super()._serve(handler, path, head)


def test_repair_exits_7_when_something_is_still_wrong_afterwards(published, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(published), PRODUCT, "1.0.0", dest)
    (dest / "README.txt").unlink()
    with _DamagingOrigin(published, dest / "LICENSE.txt") as origin:
        p = subprocess.run(DEPOT + ["--json", "repair", "--allow-unsigned", "--origin", origin.url,
                                    "--dest", str(dest)], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 7, p.stderr
    r = json.loads(p.stdout)
    assert (r["repaired"], r["after"]["missing"], r["after"]["intact"]) == (["README.txt"], [], False)
    assert [d["path"] for d in r["after"]["damaged"]] == ["LICENSE.txt"]
    assert p.stderr.splitlines() == [f"depot: {dest}: still damaged after repair: ['LICENSE.txt']"]


def test_a_repair_that_cannot_fetch_a_chunk_says_why_and_changes_nothing(published, tmp_path):
    origin = tmp_path / "origin"
    shutil.copytree(published, origin)
    dest = tmp_path / "game"
    install(fetcher(origin), PRODUCT, "1.0.0", dest)
    (dest / "README.txt").unlink()
    before = tree(dest)
    gone = manifest.load(open_store(str(origin)), PRODUCT, "1.0.0").entry("README.txt").chunks[0].id
    (origin / "chunks" / gone[:2] / gone).unlink()
    p = subprocess.run(DEPOT + ["--json", "repair", "--allow-unsigned", "--origin", str(origin), "--dest", str(dest)],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 3 and json.loads(p.stdout)["error"] == "NOT_FOUND" and gone in p.stderr
    assert tree(dest) == before and verify(dest).missing == ["README.txt"]


def test_the_clients_defaults_reach_the_fetcher(published, tmp_path, monkeypatch):
    """--jobs 8, --timeout 10, --retries 3 with backoff doubling from 0.1 s: the values the
    command hands to the download, and a dead origin asked exactly 1 + 3 times."""
    from depot_app import cli
    from pipeline.client import install as install_module

    passed, slept = {}, []
    real_install = install_module.install

    def install_spy(fetcher, product, version, dest, **kw):
        passed.update(fetcher=fetcher, jobs=kw["jobs"])
        fetcher.sleep = slept.append  # the backoff waits on the test's record, not the wall clock
        return real_install(fetcher, product, version, dest, **kw)

    monkeypatch.setattr(install_module, "install", install_spy)
    with FaultyOrigin(published) as dead:
        dead.fail_all = True
        code = cli.main(["--json", "install", "--allow-unsigned", "--origin", dead.url, "-p", PRODUCT, "-v", "1.0.0",
                         "--dest", str(tmp_path / "game")])
    assert code == 10  # CDN_UNREACHABLE
    assert dead.requests_by_path == {f"/products/{PRODUCT}/versions/1.0.0/manifest.json": 4}
    assert slept == [0.1, 0.2, 0.4]
    f = passed["fetcher"]
    assert passed["jobs"] == 8 and (f.retries, f.backoff) == (3, 0.1)
    origin = f.origins[0]
    assert origin.location.timeout == 10
    assert origin.connections == 8  # a connection per download in flight
