"""What tests share besides fixtures: the fixture builds, the depot command as a process,
killing it mid-run, and snapshots of a tree."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "builds"
PRODUCT = "starfall"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
PAIRS = [(a, b) for i, b in enumerate(VERSIONS) for a in VERSIONS[:i]]  # every (older, newer)


# the depot command, run as a real process (from the source tree, installed or not)
DEPOT = [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def kill_while_running(args: list[str], delays, after_each) -> int:
    """Start ``args`` (a real process group) once per delay, SIGKILL it that many seconds
    later if it is still running, and call ``after_each()`` to inspect what it left; stop
    early if ``after_each()`` returns True. Returns how many runs were killed."""
    killed = 0
    for delay in delays:
        proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        if after_each():
            break
    return killed


def fixture_tar(version: str) -> Path:
    return FIXTURES / PRODUCT / f"{version}.tar"


def fixture_params():
    """The fixture product's chunk sizes: small, so that its files have several chunks."""
    from pipeline.core.chunk_params import ChunkParams

    return ChunkParams(16 << 10, 64 << 10, 256 << 10)


def chunk_fixture_versions(root: Path, versions=VERSIONS, params=None):
    """A repository at ``root`` with the fixture versions ingested and chunked."""
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest
    from pipeline.storage import open_store

    store = open_store(str(root))
    products.configure(store, PRODUCT, params or fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for v in versions:
            ingest(store, str(fixture_tar(v)), PRODUCT, v, ex)
            chunk(store, PRODUCT, v, ex)
    return store


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: to prove that nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fetcher(*urls, locations=None, timeout: float = 10.0, **kw):
    """A client's fetcher over origins given as paths or URLs, with quick retries."""
    from pipeline.client.fetch import Fetcher
    from pipeline.storage import Locations, open_origin

    locations = locations or Locations()
    kw.setdefault("backoff", 0.01)
    return Fetcher([open_origin(dataclasses.replace(locations.resolve(str(u)), timeout=timeout)) for u in urls], **kw)


def tree(root: Path) -> dict:
    """Everything a player's directory holds, as comparable values."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] == ".depot":
            continue
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            out[rel] = ("file", stat.S_IMODE(p.stat().st_mode) & 0o111 != 0, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def assert_installed(dest: Path, build_dir: Path):
    from pipeline.client.verify import verify

    assert tree(dest) == tree(build_dir)
    assert verify(dest).intact


def load_plan(store, product: str, from_version: str, to_version: str) -> dict:
    """An update plan as its JSON document."""
    from pipeline.formats import plan

    return plan.load(store, product, from_version, to_version).to_dict()
