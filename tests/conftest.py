"""Fixtures: real S3 (moto's server on 127.0.0.1), a real Dask LocalCluster, the fixture
builds unpacked to directories, and a repository with every fixture version planned."""

from __future__ import annotations

import compileall
import concurrent.futures as cf
import os
import signal
import tarfile
import uuid
from pathlib import Path

import pytest

from helpers import PAIRS, ROOT
from depot_testing.fixtures import PRODUCT, VERSIONS, chunk_fixture_versions, fixture_tar

# A suite started in the background by a shell without job control inherits SIGINT
# ignored, and so would every depot it starts: the tests that press Ctrl-C would go
# unheard. A handler of the suite's own is reset to the default in each child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Every depot a test starts imports the project's modules. Where PYTHONDONTWRITEBYTECODE
# is set, as in some CI images, none is ever cached and each process compiles them anew
# (a quarter of a short command's CPU): compiled once here, all of them read the cache.
for package in ("pipeline", "commands", "dask_cluster", "depot_testing"):
    compileall.compile_dir(ROOT / package, quiet=1)
compileall.compile_file(ROOT / "cli.py", quiet=1)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server over real HTTP on loopback. Credentials go in the environment, the
    way AWS tools find them (set before any Dask worker starts, so the workers see them
    too); the endpoint goes in DEPOT_S3_ENDPOINT for the depot commands tests run."""
    from depot_testing.s3 import moto_server

    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED",
             "DEPOT_S3_ENDPOINT")
    saved = {k: os.environ.get(k) for k in names}
    with moto_server() as endpoint:
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",  # never look for credentials off this machine
            DEPOT_S3_ENDPOINT=endpoint,
        )
        yield endpoint
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    """Locations for s3:// URLs on the test server: ``s3.resolve(url)``."""
    from pipeline.storage import Locations

    return Locations(s3_endpoint=s3_endpoint)


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
    from depot_app import dask_cluster

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


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """A repository with every fixture version chunked, and stable -> 1.2.0."""
    from pipeline.publish.channels import promote

    root = tmp_path_factory.mktemp("published")
    promote(chunk_fixture_versions(root), PRODUCT, "1.2.0", "stable")
    return root


@pytest.fixture(scope="session")
def planned(tmp_path_factory):
    """Every fixture version chunked and every pair planned."""
    from pipeline.delta.diff import diff

    root = tmp_path_factory.mktemp("planned")
    store = chunk_fixture_versions(root)
    with cf.ThreadPoolExecutor(2) as ex:
        for a, b in PAIRS:
            diff(store, PRODUCT, a, b, ex)
    return root


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Tansu broker (Kafka's protocol) on a free loopback port for a test module: its
    "127.0.0.1:PORT". Without the broker the test skips, or fails under CI."""
    from depot_testing import kafka
    from helpers import unavailable

    try:
        with kafka.tansu(tmp_path_factory.mktemp("tansu")) as bootstrap:
            yield bootstrap
    except kafka.BrokerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL (Debian's) in a temporary directory: the URL of its first database."""
    from depot_testing.databases import postgres

    with postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's PostgreSQL: its URL."""
    from depot_testing.databases import create_database

    return create_database(postgres_server, f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def redis_server_url():
    """A real Redis (Debian's) in a temporary directory: its URL."""
    from depot_testing.databases import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url):
    """The session's Redis, emptied first."""
    import redis

    with redis.Redis.from_url(redis_server_url) as r:
        r.flushall()
    return redis_server_url
