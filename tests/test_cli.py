"""The depot command as users and scripts run it: output, exit codes, kills."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archives import tar_member, write_tar
from helpers import DEPOT, ROOT, kill_while_running
from pipeline.formats import inventory, manifest
from pipeline.layout import metadata_key
from depot_testing.fixtures import PRODUCT, fixture_tar
from depot_testing.http_origins import StaticOrigin



def depot(*args, repo, check=None, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(DEPOT + ["--repo", str(repo), *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kw)
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


@pytest.fixture
def repo(tmp_path):
    return tmp_path / "repo"


def test_run_prints_a_json_summary_and_rerunning_is_a_no_op(repo):
    """The first run on a local cluster (--workers starts a scheduler and worker processes;
    once depot exits, none is left), the second on threads."""
    import uuid

    depot("configure", "-p", PRODUCT, "--chunk-min", "16KiB", "--chunk-avg", "64KiB", "--chunk-max", "256KiB", repo=repo, check=0)
    mark = f"DEPOT_TEST_RUN={uuid.uuid4().hex}"
    key, value = mark.split("=")
    p = subprocess.run(DEPOT + ["--repo", str(repo), "--json", "--workers", "2", "run", str(fixture_tar("1.0.0")),
                                "-p", PRODUCT, "-v", "1.0.0"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, key: value})
    assert p.returncode == 0, p.stderr
    assert _gone(mark) == []
    first = json.loads(p.stdout)
    assert first["ingest"]["created"] and first["chunk"]["created"]
    assert first["chunks_new"] == first["chunk"]["unique_chunks"] > 1 and first["chunks_reused"] == 0
    assert first["bytes"] == sum(m.size for m in __import__("tarfile").open(fixture_tar("1.0.0")) if m.isreg())
    again = json.loads(depot("--json", "run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0", repo=repo, check=0).stdout)
    assert not again["ingest"]["created"] and not again["chunk"]["created"] and again["chunks_new"] == 0
    listing = json.loads(depot("--json", "ls", "-p", PRODUCT, repo=repo, check=0).stdout)
    assert listing["versions"] == [{"version": "1.0.0", "state": "chunked"}]
    with __import__("tarfile").open(fixture_tar("1.0.0")) as tf:
        expected = tf.extractfile("config/settings.ini").read()
    out = subprocess.run(DEPOT + ["--repo", str(repo), "cat", "-p", PRODUCT, "-v", "1.0.0", "config/settings.ini"],
                         capture_output=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout == expected


@pytest.mark.parametrize(
    "make_args, code, error",
    [
        (lambda t: ["ingest", write_tar(t / "b.tar", [tar_member("../x", b"1")]), "-p", PRODUCT, "-v", "1"], 5, "UNSAFE_ENTRY"),
        (lambda t: ["ingest", (t / "b.tar.gz").__fspath__(), "-p", PRODUCT, "-v", "1"], 4, "SOURCE_INVALID"),
        (lambda t: ["chunk", "-p", PRODUCT, "-v", "1"], 3, "NOT_FOUND"),
        (lambda t: ["ingest", fixture_tar("1.0.0"), "-p", "Bad Name", "-v", "1"], 2, "INVALID_NAME"),
    ],
    ids=["unsafe", "missing-source", "not-ingested", "bad-name"],
)
def test_errors_have_documented_exit_codes_and_json(repo, tmp_path, make_args, code, error):
    p = depot("--json", *make_args(tmp_path), repo=repo, check=code)
    assert json.loads(p.stdout)["error"] == error
    assert p.stderr.startswith("depot: error: ") and error in p.stderr
    assert "Traceback" not in p.stderr


def test_usage_errors_exit_2(repo):
    assert depot("ingest", repo=repo).returncode == 2
    assert depot("configure", "-p", PRODUCT, "--chunk-avg", "lots", repo=repo).returncode == 2


def test_version_conflict_and_damage_exit_codes(repo, tmp_path):
    depot("run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1", repo=repo, check=0)
    p = depot("run", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1", repo=repo, check=6)
    assert "VERSION_CONFLICT" in p.stderr

    chunks = sorted((repo / "chunks").rglob("*"))
    victim = max((c for c in chunks if c.is_file()), key=lambda c: c.stat().st_size)
    damaged = victim.read_bytes()
    victim.write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))  # its last byte, whatever it was, changed
    m = manifest.Manifest.from_bytes(next(repo.rglob("manifest.json")).read_bytes(), "manifest.json")
    path = next(f.path for f in m.files if any(c.id == victim.name for c in f.chunks))
    out = tmp_path / "out.bin"
    p = depot("cat", "-p", PRODUCT, "-v", "1", path, "-o", out, repo=repo, check=7)
    assert "CHUNK_INVALID" in p.stderr and not out.exists() and not list(tmp_path.glob("out.bin*"))

    mpath = next(repo.rglob("manifest.json"))
    mpath.write_bytes(manifest.encode({**manifest.decode(mpath.read_bytes()), "format": "other"}))
    assert "MANIFEST_INVALID" in depot("cat", "-p", PRODUCT, "-v", "1", path, repo=repo, check=8).stderr


def _big_upload(path: Path) -> Path:
    rnd = random.Random(3)
    members = [tar_member(f"data/pak{i}.bin", rnd.randbytes(6 << 20) + bytes(2 << 20)) for i in range(8)]
    members.append(tar_member("readme.txt", b"big game\n"))
    return write_tar(path, members, compression="zst")


def test_a_killed_run_leaves_nothing_half_written_and_resumes(tmp_path):
    """SIGKILL the whole process group at several points; every rerun ends in the same
    manifest as an uninterrupted run, and no kill ever leaves a manifest or inventory
    that is not whole, or a manifest naming a chunk the repository does not hold."""
    upload = _big_upload(tmp_path / "upload.tar.zst")
    args = ["run", upload, "-p", PRODUCT, "-v", "7"]
    reference = tmp_path / "reference"
    depot("configure", "-p", PRODUCT, "--chunk-min", "16KiB", "--chunk-avg", "64KiB", "--chunk-max", "256KiB", repo=reference, check=0)
    began = time.monotonic()
    depot(*args, repo=reference, check=0)
    took = time.monotonic() - began  # the kills below land across a run of this length
    expected = next(reference.rglob("manifest.json")).read_bytes()

    repo = tmp_path / "repo"
    depot("configure", "-p", PRODUCT, "--chunk-min", "16KiB", "--chunk-avg", "64KiB", "--chunk-max", "256KiB", repo=repo, check=0)
    def whole_or_absent() -> bool:
        for doc in repo.rglob("manifest.json"):
            manifest.decode(doc.read_bytes())  # whole, or not there at all
        for doc in repo.rglob("inventory.json"):
            inventory.decode(doc.read_bytes())
        assert _chunks_named_but_missing(repo) == []  # a manifest is written after its chunks
        return bool(list(repo.rglob("manifest.json")))

    killed = kill_while_running(DEPOT + ["--repo", str(repo), *map(str, args)],
                                [took * f for f in (0.3, 0.45, 0.6, 0.75, 0.9)], whole_or_absent)
    assert killed >= 1
    depot(*args, repo=repo, check=0)
    assert next(repo.rglob("manifest.json")).read_bytes() == expected
    assert _chunks_named_but_missing(repo) == []


def _chunks_named_but_missing(repo: Path) -> list[str]:
    """The chunk objects the repository's manifests name and it does not hold, spelled as
    docs/format.md lays them out: chunks/<first 2 hex of id>/<id>."""
    missing = []
    for doc in repo.glob("products/*/versions/*/manifest.json"):
        ids = manifest.decode(doc.read_bytes())["chunks"]["id"]
        missing += [f"{doc.relative_to(repo)} -> {i}" for i in (ids[k:k + 64] for k in range(0, len(ids), 64))
                    if not (repo / "chunks" / i[:2] / i).is_file()]
    return missing


def _finished_chunk_tasks(dask_scheduler):
    prefix = dask_scheduler.task_prefixes.get("chunk_small_files")
    return prefix.state_counts["memory"] if prefix is not None else 0  # a prefix with no live task is falsy


def test_an_existing_dask_scheduler_runs_the_work(tmp_path, dask_executor):
    """--scheduler sends the tasks to a cluster started elsewhere (here: the test's)."""
    client = dask_executor.client
    before = client.run_on_scheduler(_finished_chunk_tasks)
    repo = tmp_path / "repo"
    r = json.loads(depot("--json", "--scheduler", client.scheduler.address, "run", fixture_tar("1.2.0"),
                         "-p", PRODUCT, "-v", "1.2.0", repo=repo, check=0).stdout)
    assert r["chunk"]["created"] and r["chunks_new"] > 0
    assert client.run_on_scheduler(_finished_chunk_tasks) > before


def test_depot_repo_locations_and_scheduler_stand_for_their_options(tmp_path, dask_executor):
    """No option at all: DEPOT_LOCATIONS names the locations file, DEPOT_REPO a location in
    it, DEPOT_SCHEDULER the cluster the work goes to."""
    client = dask_executor.client
    before = client.run_on_scheduler(_finished_chunk_tasks)
    (tmp_path / "locations.toml").write_text(f'[main]\nurl = "{tmp_path / "repo"}"\n')
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "DEPOT_LOCATIONS": str(tmp_path / "locations.toml"), "DEPOT_REPO": "main",
           "DEPOT_SCHEDULER": client.scheduler.address}
    p = subprocess.run(DEPOT + ["--json", "run", str(fixture_tar("1.1.0")), "-p", PRODUCT, "-v", "1.1.0"],
                       capture_output=True, text=True, cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["chunk"]["created"]
    assert (tmp_path / "repo" / "products" / PRODUCT / "versions" / "1.1.0" / "manifest.json").is_file()
    assert list(work.iterdir()) == []  # neither ./depot-repo nor a directory named "main"
    assert client.run_on_scheduler(_finished_chunk_tasks) > before


def test_s3_without_credentials_is_a_clear_error(tmp_path, s3_endpoint):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(DEPOT_S3_ENDPOINT=s3_endpoint, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    run = lambda *a: subprocess.run(DEPOT + list(a), cwd=ROOT, capture_output=True, text=True, env=env)
    p = run("--repo", "s3://somebucket/repo", "ls")
    assert p.returncode == 9 and "STORE_UNAVAILABLE" in p.stderr and "credentials" in p.stderr
    p = run("--repo", str(tmp_path / "repo"), "ingest", "s3://somebucket/build.tar", "-p", PRODUCT, "-v", "1")
    assert p.returncode == 9 and "STORE_UNAVAILABLE" in p.stderr and "s3://somebucket/build.tar" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("flag, url", [("--repo", "s4://bucket/x"), ("--repo", "s3:/bucket/x"),
                                       ("--repo", "memry://x"), ("--origin", "htps://cdn.example/depot")])
def test_a_mistyped_url_is_a_usage_error_naming_it(tmp_path, flag, url):
    args = ["--repo", url, "ls"] if flag == "--repo" else ["install", "--origin", url, "-p", PRODUCT, "-v", "1",
                                                             "--dest", tmp_path / "game"]
    p = subprocess.run(DEPOT + ["--json", *map(str, args)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and json.loads(p.stdout)["error"] == "INVALID_LOCATION", p.stderr
    assert url in p.stderr and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []  # no directory named "s3:" or anything else


def test_an_http_repository_is_refused_before_anything_is_read(tmp_path):
    p = depot("chunk", "-p", PRODUCT, "-v", "1", repo="https://cdn.example/depot", check=2)
    assert "INVALID_LOCATION" in p.stderr and "read-only" in p.stderr


def test_each_location_reaches_its_own_endpoint(tmp_path, s3_endpoint, s3_bucket):
    """The build is on one S3 (an upload region), the repository on another, each named in a
    locations file with its endpoint; nothing in the environment says where S3 is. The Dask
    workers get the endpoints from the locations they are given."""
    import boto3

    from depot_testing.s3 import moto_server_process

    boto3.client("s3", endpoint_url=s3_endpoint).upload_file(str(fixture_tar("1.1.0")), s3_bucket[5:], "b.tar")
    with moto_server_process() as other:
        boto3.client("s3", endpoint_url=other).create_bucket(Bucket="depot-msk")
        locations = tmp_path / "locations.toml"
        locations.write_text(f'[uploads]\nurl = "{s3_bucket}"\nendpoint = "{s3_endpoint}"\n\n'
                             f'[msk]\nurl = "s3://depot-msk/main"\nendpoint = "{other}"\nregion = "ru-msk"\n')
        env = {k: v for k, v in os.environ.items() if k not in ("DEPOT_S3_ENDPOINT", "AWS_ENDPOINT_URL")}
        run = lambda *a: subprocess.run(DEPOT + ["--locations", str(locations), "--repo", "msk", *map(str, a)],
                                        capture_output=True, text=True, cwd=ROOT, env=env)
        p = run("--workers", "2", "--json", "run", f"{s3_bucket}/b.tar", "-p", PRODUCT, "-v", "1.1.0")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["chunk"]["created"]
        there = boto3.client("s3", endpoint_url=other).list_objects_v2(Bucket="depot-msk", Prefix="main/products/")
        assert f"main/products/{PRODUCT}/versions/1.1.0/manifest.json" in {o["Key"] for o in there["Contents"]}
        buckets = {b["Name"] for b in boto3.client("s3", endpoint_url=s3_endpoint).list_buckets()["Buckets"]}
        assert "depot-msk" not in buckets  # the repository went to its own endpoint only
        game = tmp_path / "game"
        p = run("--json", "install", "--allow-unsigned", "--origin", "msk", "-p", PRODUCT, "-v", "1.1.0", "--dest", game)
        assert p.returncode == 0, p.stderr
        assert run("verify", "--dest", game).returncode == 0


def test_json_after_the_command_name_and_for_usage_errors(repo):
    depot("run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0", repo=repo, check=0)
    listing = depot("ls", "-p", PRODUCT, "--json", repo=repo, check=0)
    assert json.loads(listing.stdout) == {"product": PRODUCT, "versions": [{"version": "1.0.0", "state": "chunked"}]}
    usage = depot("ingest", "--json", "-p", PRODUCT, repo=repo, check=2)
    assert json.loads(usage.stdout)["error"] == "USAGE" and "SOURCE" in usage.stderr
    nothing = depot("--json", "ls", "-p", "nosuch", repo=repo, check=3)
    assert json.loads(nothing.stdout)["error"] == "NOT_FOUND" and "nosuch" in nothing.stderr


def test_jobs_run_on_threads_unless_a_cluster_is_asked_for():
    import concurrent.futures as cf

    from depot_app import dask_cluster

    assert isinstance(dask_cluster.executor_for(), cf.ThreadPoolExecutor)
    assert isinstance(dask_cluster.executor_for(workers=2, in_process=True), cf.ThreadPoolExecutor)  # memory://
    for ex in (dask_cluster.executor_for(workers=1), dask_cluster.executor_for(scheduler="tcp://127.0.0.1:1")):
        with ex as executor:  # the cluster starts on the first task: none is sent here
            assert isinstance(executor, dask_cluster.LazyDaskExecutor)


def test_local_run_and_install_import_only_what_they_use(tmp_path):
    """A command imports its own module of commands/ and the libraries it uses, nothing
    else: each library costs every run (fsspec, urllib3, python-tuf: about 0.2 s together;
    s3fs and aiobotocore 0.65 s; cryptography, which only an embargoed build needs,
    about 10 ms; the cluster, the service's and the analysts' libraries
    more). On local paths and an unsigned repository, run and install need none of them."""
    import tarfile

    build = tmp_path / "build"
    with tarfile.open(fixture_tar("1.0.0")) as tf:
        tf.extractall(build, filter="data")
    repo, game = tmp_path / "repo", tmp_path / "game"
    heavy = ("fsspec", "urllib3", "tuf", "securesystemslib", "botocore", "s3fs", "aiobotocore", "dask", "distributed",
             "fastapi", "uvicorn", "sqlalchemy", "alembic", "redis", "grpc", "confluent_kafka", "pyarrow", "duckdb",
             "altair", "tqdm", "cryptography")
    shared = ["depot_app", "depot_app.cli", "depot_app.commands", "depot_app.commands.shared"]
    install = ["install", "-p", PRODUCT, "-v", "1.0.0", "--dest", game, "--origin", repo, "--allow-unsigned"]
    for args, own in ((["--repo", repo, "run", build, "-p", PRODUCT, "-v", "1.0.0"],
                       ["depot_app.commands.build", "depot_app.dask_cluster", "depot_app.manifests"]),
                      (install, ["depot_app.commands.player", "depot_app.manifests"]),
                      (["install", "--help"], ["depot_app.commands.player"])):
        code = ("import sys; from depot_app import cli; code = cli.main(sys.argv[1:]); "
                f"print(sorted(m for m in {heavy!r} if m in sys.modules)); "
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'depot_app')); sys.exit(code)")
        p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[-2:] == ["[]", str(sorted(shared + own))], args[:2]
    assert (game / "config" / "settings.ini").read_bytes() == (build / "config" / "settings.ini").read_bytes()


def test_every_command_is_found_in_the_module_that_lists_it():
    """The group names each command's module without importing it: the names agree with
    each module's COMMANDS, and every command is found."""
    import importlib

    from depot_app import cli

    for module, names in cli.COMMANDS.items():
        listed = importlib.import_module(f"depot_app.commands.{module}").COMMANDS
        assert tuple(c.name for c in listed) == names
    assert cli.cli.list_commands(None) == sorted(n for names in cli.COMMANDS.values() for n in names)
    assert all(cli.cli.get_command(None, name).name == name for name in cli.cli.list_commands(None))
    assert cli.cli.get_command(None, "nosuch") is None


def test_depot_trust_and_depot_allow_unsigned_stand_for_their_options(published, tmp_path):
    from depot_testing.fixtures import signed_repository
    from pipeline.client.verify import verify

    signed = signed_repository(tmp_path / "signed", versions=("1.0.0",)) / "repo"
    depot("trust", "root", "-o", tmp_path / "root.json", repo=signed, check=0)
    env = {k: v for k, v in os.environ.items() if k not in ("DEPOT_TRUST", "DEPOT_ALLOW_UNSIGNED")}
    env["DEPOT_DATA_DIR"] = str(tmp_path / "player-data")

    def install(origin: Path, dest: str, **variables) -> subprocess.CompletedProcess:
        return subprocess.run(DEPOT + ["--json", "install", "--origin", str(origin), "-p", PRODUCT, "-v", "1.0.0",
                                       "--dest", str(tmp_path / dest)], capture_output=True, text=True, cwd=ROOT,
                              env={**env, **variables})

    for origin in (signed, published):  # without them, neither origin is trusted
        p = install(origin, "refused")
        assert p.returncode == 17 and json.loads(p.stdout)["error"] == "TRUST_MISSING", p.stderr
    p = install(signed, "from-signed", DEPOT_TRUST=str(tmp_path / "root.json"))
    assert p.returncode == 0, p.stderr
    p = install(published, "from-unsigned", DEPOT_ALLOW_UNSIGNED="1")
    assert p.returncode == 0, p.stderr
    assert verify(tmp_path / "from-signed").intact and verify(tmp_path / "from-unsigned").intact


def test_ls_shows_a_version_ingested_but_not_chunked_as_ingested(repo):
    depot("run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0", repo=repo, check=0)
    depot("ingest", fixture_tar("1.1.0"), "-p", PRODUCT, "-v", "1.1.0", repo=repo, check=0)
    listing = json.loads(depot("--json", "ls", "-p", PRODUCT, repo=repo, check=0).stdout)
    assert listing["versions"] == [{"version": "1.0.0", "state": "chunked"}, {"version": "1.1.0", "state": "ingested"}]
    assert depot("ls", "-p", PRODUCT, repo=repo, check=0).stdout == "1.0.0\tchunked\n1.1.0\tingested\n"


def _with_a_terminal(args: list[str], terminal: str) -> tuple[bytes, bytes, int]:
    """Run ``args`` with ``terminal`` ("stdout" or "stderr") on a pseudo-terminal of 120
    columns and the other stream on a pipe: (stdout, stderr, exit code)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = bytearray()

    def read_terminal():
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not data:
                return
            seen.extend(data)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, terminal: slave}
    try:
        proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL, **streams)
    finally:
        os.close(slave)
    piped = proc.communicate()
    reader.join()
    os.close(master)
    out, err = (bytes(seen), piped[1]) if terminal == "stdout" else (piped[0], bytes(seen))
    return out, err, proc.returncode


def test_progress_bars_go_to_stderr_only_when_it_is_a_terminal(tmp_path):
    run = lambda name: DEPOT + ["--repo", str(tmp_path / name), "--json", "run", str(fixture_tar("1.0.0")),
                                "-p", PRODUCT, "-v", "1.0.0"]
    out, err, code = _with_a_terminal(run("a"), "stderr")
    assert code == 0, err
    assert json.loads(out)["chunk"]["created"]  # stdout holds the result alone
    assert b"run starfall 1.0.0:" in err and b"%|" in err

    out, err, code = _with_a_terminal(run("b"), "stdout")
    assert code == 0, err
    assert err == b""
    assert json.loads(out)["chunk"]["created"]  # the terminal got the result, and no bar

    p = subprocess.run(run("c"), capture_output=True, cwd=ROOT)
    assert p.returncode == 0 and p.stderr == b"" and json.loads(p.stdout)["chunk"]["created"]


# A depot process with a bug planted where `ls` reads the repository.
WITH_A_BUG = DEPOT[:2] + ["import sys, pipeline.build.catalog as catalog\nfrom depot_app import cli\n"
                          "def versions(*args): raise ZeroDivisionError('planted')\n"
                          "catalog.versions = versions\n"
                          "sys.exit(cli.main())"]


def test_an_unexpected_failure_exits_1_and_prints_its_trace(repo):
    p = subprocess.run(WITH_A_BUG + ["--repo", str(repo), "--json", "ls", "-p", PRODUCT], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"error": "DEPOT_ERROR", "message": "internal error: ZeroDivisionError: planted"}
    lines = p.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any(line.strip().startswith(f'File "{ROOT / "commands" / "build.py"}"') and line.endswith(", in ls")
               for line in lines)
    assert lines[-2:] == ["ZeroDivisionError: planted",
                          "depot: internal error (this is a bug; the trace above says where)"]


def test_ctrl_c_exits_130_interrupted(published, tmp_path):
    with StaticOrigin(published) as origin:
        proc = subprocess.Popen(DEPOT + ["--json", "install", "--allow-unsigned", "--origin", origin.url, "-p", PRODUCT,
                                         "-v", "1.3.0", "--dest", str(tmp_path / "game"), "--max-rate", "512KiB"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                # as from a terminal: a suite started in the background by a
                                # shell inherits SIGINT ignored, and so would depot
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while not any(path.startswith("/chunks/") for path in list(origin.requests_by_path)):
            if proc.poll() is not None:
                pytest.fail(f"install ended before downloading a chunk: {proc.communicate()}")
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends, while the download runs
        out, err = proc.communicate()
    assert proc.returncode == 130
    assert json.loads(out) == {"error": "INTERRUPTED", "message": "interrupted"}
    assert err.splitlines()[-1] == "depot: error: interrupted [INTERRUPTED]" and "Traceback" not in err


def _processes_marked(mark: str) -> list[int]:
    """Processes whose environment holds ``mark``: whatever a command started, reparented or not."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return found


def _wait_until(condition, proc: subprocess.Popen, what: str, bound_s: float = 300.0) -> None:
    """Wait for ``condition()`` while ``proc`` runs: a condition, never a guess at how long
    a loaded machine takes. The bound only keeps a broken build from hanging the suite."""
    deadline = time.monotonic() + bound_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"depot ended before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"no {what} after {bound_s} s"
        time.sleep(0.01)


def _gone(mark: str, bound_s: float = 60.0) -> list[int]:
    """The processes still marked once they had ``bound_s`` to end (a process exits a little
    after its parent does; one left for a minute is left behind)."""
    deadline = time.monotonic() + bound_s
    while _processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(pid, _cmdline(pid)) for pid in _processes_marked(mark)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # gone meanwhile


def _cluster_workers(mark: str) -> list[int]:
    """The worker processes a local cluster spawned (multiprocessing's spawn entry point)."""
    return [pid for pid in _processes_marked(mark) if b"spawn_main" in _cmdline(pid)]


def _slow_build(path: Path) -> Path:
    """A build whose chunking takes seconds of CPU and no disk: a sparse file of zeros."""
    path.mkdir()
    (path / "readme.txt").write_bytes(b"a big game\n")
    with open(path / "huge.pak", "wb") as f:
        f.truncate(1 << 30)
    return path


def _ctrl_c_on_a_cluster(args: list[str], repo: Path, when) -> tuple[int, str, str]:
    """Run depot with a local cluster of 2 workers in its own process group, wait for
    ``when(mark)``, then send SIGINT to the whole group as a terminal's Ctrl-C does."""
    import uuid

    mark = f"DEPOT_TEST_RUN={uuid.uuid4().hex}"
    key, value = mark.split("=")
    proc = subprocess.Popen(DEPOT + ["--repo", str(repo), "--workers", "2", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, key: value},
                            start_new_session=True,
                            # as from a terminal: a suite started in the background by a shell
                            # inherits SIGINT ignored, and so would depot
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_until(lambda: when(mark), proc, "the moment to interrupt it")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _gone(mark) == []
    return proc.returncode, out, err


def _a_chunk_in(repo: Path):
    return lambda mark: any(p.is_file() for p in (repo / "chunks").rglob("*"))


@pytest.mark.parametrize("phase", ["cluster-starting", "workers-working"])
def test_ctrl_c_during_a_run_on_a_local_cluster_is_one_line_and_leaves_no_process(tmp_path, phase):
    """The terminal sends Ctrl-C to the whole process group, workers included, whether
    they are still starting (importing, before any handler of theirs is set) or at work:
    depot alone answers (130, one line), stops them, and writes no manifest. Running the
    command again finishes the job with the manifest an uninterrupted run writes."""
    build = _slow_build(tmp_path / "build")
    repo = tmp_path / "repo"
    args = ["run", build, "-p", PRODUCT, "-v", "1.0.0"]
    when = (lambda mark: _cluster_workers(mark)) if phase == "cluster-starting" else _a_chunk_in(repo)
    code, out, err = _ctrl_c_on_a_cluster(args, repo, when)
    assert (code, out, err) == (130, "", "depot: error: interrupted [INTERRUPTED]\n")
    assert list(repo.rglob("manifest.json")) == []
    if phase == "workers-working":
        depot(*args, repo=repo, check=0)
        depot(*args, repo=tmp_path / "reference", check=0)
        assert next(repo.rglob("manifest.json")).read_bytes() == \
            next((tmp_path / "reference").rglob("manifest.json")).read_bytes()


def test_ctrl_c_during_chunk_on_a_local_cluster_is_one_line_and_leaves_no_process(tmp_path):
    repo = tmp_path / "repo"
    depot("ingest", _slow_build(tmp_path / "build"), "-p", PRODUCT, "-v", "1.0.0", repo=repo, check=0)
    code, out, err = _ctrl_c_on_a_cluster(["--json", "chunk", "-p", PRODUCT, "-v", "1.0.0"], repo, _a_chunk_in(repo))
    assert code == 130 and json.loads(out) == {"error": "INTERRUPTED", "message": "interrupted"}
    assert err == "depot: error: interrupted [INTERRUPTED]\n"
    assert list(repo.rglob("manifest.json")) == []


def test_ctrl_c_stops_depot_serve_with_one_line(tmp_path):
    """A server stops on Ctrl-C: uvicorn closes its socket, then depot says so in one line
    (after the line that said where it served) and exits 130."""
    import socket
    import urllib.error
    import urllib.request

    repo = tmp_path / "repo"
    depot("run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0", repo=repo, check=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(DEPOT + ["serve", "--origin", str(repo), "--port", str(port), "--link-secret", "s" * 32],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        _wait_until(answers, proc, "the service answered")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (130, "")
    assert err.splitlines() == [f"serving {repo} on http://127.0.0.1:{port}/api/v1/download",
                                "depot: error: interrupted [INTERRUPTED]"]
    assert not answers()


# A depot process that presses Ctrl-C on itself at one precise point: the moment is
# planted in the code, not guessed with a timer.
CTRL_C_AT = """
import os, signal, sys, threading
from depot_app import cli
{plant}
sys.exit(cli.main())
"""

PLANTS = {
    # Just after the result is printed, before the command returns.
    "after-the-result": """
emit = cli.Settings.emit
def emit_then_ctrl_c(self, result, human):
    emit(self, result, human)
    os.kill(os.getpid(), signal.SIGINT)
cli.Settings.emit = emit_then_ctrl_c
""",
    # In an exit hook, after main returned (Dask's exit hooks run there too).
    "exit-hook": """
import atexit
atexit.register(os.kill, os.getpid(), signal.SIGINT)
""",
    # While the interpreter frees its modules, once Python's own SIGINT handler is gone.
    "interpreter-shutdown": """
class Late:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
late = Late()
""",
}


def _with_ctrl_c_at(plant: str, args: list, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CTRL_C_AT.replace("{plant}", plant), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env,
                          # as from a terminal: a suite started in the background by a shell
                          # inherits SIGINT ignored, and so would depot
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("point, workers", [("after-the-result", []), ("exit-hook", ["--workers", "2"]),
                                            ("interpreter-shutdown", [])])
def test_ctrl_c_once_the_result_is_printed_leaves_the_exit_code_as_it_was(tmp_path, point, workers):
    """The work is done and said: a Ctrl-C now, while depot returns or the interpreter
    shuts down, is too late to stop anything. Exit 0, the result alone on stdout, nothing
    on stderr; never a death by signal."""
    p = _with_ctrl_c_at(PLANTS[point], ["--repo", tmp_path / "repo", *workers, "--json", "run",
                                        fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0"])
    assert (p.returncode, p.stderr) == (0, "")
    assert json.loads(p.stdout)["chunk"]["created"]


def test_ctrl_c_after_the_result_leaves_a_failing_exit_code_as_it_was(tmp_path, published):
    """A command whose result says something is wrong (verify: exit 7) keeps its code."""
    from helpers import fetcher
    from pipeline.client.install import install

    install(fetcher(published), PRODUCT, "1.0.0", tmp_path / "game")
    victim = next(p for p in sorted((tmp_path / "game").rglob("*")) if p.is_file() and ".depot" not in p.parts)
    victim.write_bytes(b"damaged")
    p = _with_ctrl_c_at(PLANTS["after-the-result"], ["--json", "verify", "--dest", tmp_path / "game"])
    assert p.returncode == 7, p.stderr
    assert json.loads(p.stdout)["damaged"] and "interrupted" not in p.stderr


@pytest.fixture(scope="module")
def signed_release(tmp_path_factory) -> Path:
    """A signed repository with 1.0.0 chunked; its keys without the root key (kept offline)."""
    from depot_testing.fixtures import signed_repository

    base = signed_repository(tmp_path_factory.mktemp("signed"), versions=("1.0.0",))
    (base / "keys" / "root.key").unlink()
    return base


def _publish_with_ctrl_c_at(plant: str, release: Path, origin: Path) -> subprocess.CompletedProcess:
    return _with_ctrl_c_at(plant, ["--repo", release / "repo", "--json", "publish", "-p", PRODUCT, "-v", "1.0.0",
                                   "--origin", origin], env={**os.environ, "DEPOT_KEYS": str(release / "keys")})


def test_ctrl_c_while_a_publish_commits_lets_the_commit_finish_and_the_publish_succeed(signed_release, tmp_path):
    """Ctrl-C lands as the timestamp (the commit) goes to the origin: a commit once begun
    completes, and then nothing was stopped, so the publish says what it did and exits 0."""
    plant = """
from pipeline.publish import origin_metadata
commit, main = origin_metadata.commit_timestamp, threading.main_thread().ident
def ctrl_c_then_commit(*args, **kw):
    signal.pthread_kill(main, signal.SIGINT)  # the main thread waits for this origin
    return commit(*args, **kw)
origin_metadata.commit_timestamp = ctrl_c_then_commit
"""
    origin = tmp_path / "origin"
    p = _publish_with_ctrl_c_at(plant, signed_release, origin)
    assert (p.returncode, p.stderr) == (0, "")
    assert json.loads(p.stdout)["origins"][0]["timestamp"] == "updated"
    assert (origin / metadata_key("timestamp")).read_bytes() == \
        (signed_release / "repo" / metadata_key("timestamp")).read_bytes()


def test_ctrl_c_after_a_publish_committed_says_the_commit_is_done(signed_release, tmp_path):
    """Ctrl-C once every origin committed, before the result is printed: exit 130, and the
    one line says the version is live, not just "interrupted"."""
    plant = """
announce = cli.Settings.announce
def ctrl_c_then_announce(self, *args, **kw):
    os.kill(os.getpid(), signal.SIGINT)
    return announce(self, *args, **kw)
cli.Settings.announce = ctrl_c_then_announce
"""
    origin = tmp_path / "origin"
    p = _publish_with_ctrl_c_at(plant, signed_release, origin)
    message = f"interrupted after the commit: {PRODUCT} 1.0.0 is live on {origin}; run the command again for the rest"
    assert p.returncode == 130
    assert json.loads(p.stdout) == {"error": "INTERRUPTED", "message": message}
    assert p.stderr.splitlines() == [f"depot: error: {message} [INTERRUPTED]"]
    assert (origin / metadata_key("timestamp")).read_bytes() == \
        (signed_release / "repo" / metadata_key("timestamp")).read_bytes()


def test_a_plain_install_runs_from_any_directory(tmp_path):
    """A wheel built from the sources (not an editable install) holds the command under
    depot_app and none of the repository's top-level names: its `depot` script and
    `python -m depot_app.cli` run a build and an install from another directory, with
    nothing of the repository on the path."""
    import shutil

    source, target, work = tmp_path / "source", tmp_path / "site", tmp_path / "work"
    source.mkdir()
    for name in ("cli.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("commands", "dask_cluster", "manifests", "pipeline"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(target), str(source)], check=True, capture_output=True)
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) == \
        ["bin", "depot_app", "pipeline"]
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import depot_app.cli, pipeline; "
                            "print(depot_app.cli.__file__, pipeline.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.split()
    assert where == [str(target / "depot_app" / "cli.py"), str(target / "pipeline" / "__init__.py")]
    for old in ("cli", "commands", "dask_cluster", "manifests"):
        p = subprocess.run([sys.executable, "-c", f"import {old}"], capture_output=True, text=True, cwd=work, env=env)
        assert p.returncode == 1 and f"No module named '{old}'" in p.stderr

    def run(*command) -> str:
        p = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=work, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert run(target / "bin" / "depot", "--help").startswith("Usage: depot [OPTIONS] COMMAND [ARGS]...")
    run(target / "bin" / "depot", "--repo", "repo", "run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0")
    run(sys.executable, "-m", "depot_app.cli", "install", "-p", PRODUCT, "-v", "1.0.0", "--dest", "game",
        "--origin", "repo", "--allow-unsigned")
    with __import__("tarfile").open(fixture_tar("1.0.0")) as tf:
        assert (work / "game" / "config" / "settings.ini").read_bytes() == tf.extractfile("config/settings.ini").read()
