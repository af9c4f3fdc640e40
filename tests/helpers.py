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


def signed_repository(base: Path, versions=("1.0.0", "1.1.0")) -> Path:
    """``base/repo``: the fixture versions chunked, every pair planned, signed with TUF
    (one root key), stable -> the last version; ``base/keys`` holds the keys."""
    from pipeline.delta.diff import diff
    from pipeline.publish.channels import promote
    from pipeline.trust import keys, repository
    from pipeline.trust.keys import Keyring

    made = {k.name: keys.load_signer(k.private)
            for k in keys.generate(base / "keys", ["root", "targets", "snapshot", "timestamp", PRODUCT])}
    store = chunk_fixture_versions(base / "repo", versions=list(versions))
    repository.init(store, [made["root"]], 1, made["targets"], made["snapshot"], made["timestamp"])
    ring = Keyring(base / "keys")
    repository.set_keys(store, ring, PRODUCT, add=[made[PRODUCT].public_key])
    with cf.ThreadPoolExecutor(2) as ex:
        for i, b in enumerate(versions):
            for a in versions[:i]:
                diff(store, PRODUCT, a, b, ex)
    promote(store, PRODUCT, versions[-1], "stable")
    repository.sign_documents(store, ring, PRODUCT)
    return base


def dangling(store) -> list[str]:
    """What an origin names but does not hold: chunks of its manifests, patches of its plans,
    versions its channel pointers deliver, and the metadata its timestamp commits to with
    the documents that metadata names for its channels. Empty for a consistent origin."""
    import json as _json

    from tuf.api.metadata import Metadata

    from pipeline import layout
    from pipeline.formats.channel import Channel
    from pipeline.formats.manifest import Manifest
    from pipeline.formats.plan import Plan

    keys = set(store.list())
    missing = []
    for key in keys:
        plain = layout.plain_key_of(key)
        if layout.version_document_of(plain) and plain.endswith("/manifest.json"):
            m = Manifest.from_bytes(store.get(key), key)
            missing += [f"{key} -> {layout.chunk_key(c)}" for c in m.unique_chunks() if layout.chunk_key(c) not in keys]
        elif layout.plan_pair_of(plain):
            for op in Plan.from_bytes(store.get(key), key).files:
                missing += [f"{key} -> {layout.patch_key(s.id)}" for s in op.segments
                            if layout.patch_key(s.id) not in keys]
        elif layout.channel_of(plain):
            c = Channel.from_bytes(store.get(key), key)
            if layout.manifest_key(c.product, c.version) not in keys:
                missing.append(f"{key} -> {c.product} {c.version}")
    ts_key = layout.metadata_key("timestamp")
    if ts_key in keys:
        ts = Metadata.from_bytes(store.get(ts_key))
        snap_key = layout.metadata_key("snapshot", ts.signed.snapshot_meta.version)
        if snap_key not in keys:
            return missing + [f"{ts_key} -> {snap_key}"]
        snap = Metadata.from_bytes(store.get(snap_key))
        for name, meta in snap.signed.meta.items():
            role_key = layout.metadata_key(name.removesuffix(".json"), meta.version)
            if role_key not in keys:
                missing.append(f"{snap_key} -> {role_key}")
                continue
            for path, info in _json.loads(store.get(role_key))["signed"].get("targets", {}).items():
                hashed = layout.hashed_target_key(path, info["hashes"]["sha256"])
                if layout.channel_of(path) and hashed not in keys:
                    missing.append(f"{role_key} -> {hashed}")
    return sorted(missing)
