"""Shared test parts: real S3 (moto's server on 127.0.0.1), a real Dask LocalCluster, the
fixture builds unpacked to directories."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "builds"
PRODUCT = "starfall"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]


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
    from pipeline.chunker import ChunkParams

    return ChunkParams(16 << 10, 64 << 10, 256 << 10)


def chunk_fixture_versions(root: Path, versions=VERSIONS, params=None):
    """A repository at ``root`` with the fixture versions ingested and chunked."""
    from pipeline import products
    from pipeline.chunk import chunk
    from pipeline.ingest import ingest
    from pipeline.store import FsspecStore

    store = FsspecStore(str(root))
    products.configure(store, PRODUCT, params or fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for v in versions:
            ingest(store, str(fixture_tar(v)), PRODUCT, v, ex)
            chunk(store, PRODUCT, v, ex)
    return store


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server over real HTTP on loopback; the environment points s3:// at it
    (set before any Dask worker starts, so the workers see it too)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED", "DEPOT_S3_ENDPOINT")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",  # never look for credentials off this machine
        DEPOT_S3_ENDPOINT=endpoint,
    )
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh, empty bucket: s3://<name>."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def dask_executor(s3_endpoint):
    """A real Dask LocalCluster with several worker processes."""
    import dask_cluster

    with dask_cluster.executor(workers=3) as ex:
        yield ex


@pytest.fixture
def threads():
    with cf.ThreadPoolExecutor(4) as ex:
        yield ex


@pytest.fixture(scope="session")
def build_dirs(tmp_path_factory) -> dict[str, Path]:
    """Each fixture version unpacked to a directory (modes, links, empty dirs kept)."""
    out = {}
    for v in VERSIONS:
        d = tmp_path_factory.mktemp(f"build-{v}")
        with tarfile.open(fixture_tar(v)) as tf:
            tf.extractall(d, filter="tar")
        out[v] = d
    return out


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: to prove that nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
