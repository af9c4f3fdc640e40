"""Every command, driven through the CLI with input a user gets wrong: the documented exit
code, a one-line message naming the input, valid JSON under --json, no traceback, and
nothing left behind in the repository or the game directory. Then property-based passes
over archive entry names and location URLs."""

from __future__ import annotations

import gzip
import io
import json
import os
import string
import subprocess
import tarfile
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archives import tar_member, write_tar
from helpers import DEPOT, tree_snapshot
from depot_testing.fixtures import PRODUCT, fixture_tar


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A repository with 1.0.0 chunked and stable -> 1.0.0, and the bad inputs."""
    base = tmp_path_factory.mktemp("bad")
    run = lambda *a: subprocess.run(DEPOT + ["--repo", str(base / "repo"), *map(str, a)], capture_output=True,
                                    text=True, cwd=base, check=True)
    run("configure", "-p", PRODUCT, "--chunk-min", "16KiB", "--chunk-avg", "64KiB", "--chunk-max", "256KiB")
    run("run", fixture_tar("1.0.0"), "-p", PRODUCT, "-v", "1.0.0")
    run("promote", "-p", PRODUCT, "-v", "1.0.0", "-c", "stable")
    data = fixture_tar("1.1.0").read_bytes()
    (base / "truncated.tar").write_bytes(data[: len(data) // 2])
    packed = gzip.compress(data)
    (base / "truncated.tar.gz").write_bytes(packed[: len(packed) // 2])
    zipped = zipfile_of(data)
    (base / "truncated.zip").write_bytes(zipped[: len(zipped) // 2])
    (base / "not-a-store" / "chunks").mkdir(parents=True)
    (base / "not-a-store" / "chunks" / "notes.txt").write_text("not depot's")
    (base / "fake.zip").write_bytes(b"PK\x03\x04 not really a zip" + bytes(100))
    write_tar(base / "escape.tar", [tar_member("ok.txt", b"1"), tar_member("../../etc/passwd", b"x")])
    (base / "empty-dir").mkdir()
    (base / "a-file").write_text("not a directory")
    (base / "not-root.json").write_text('{"signed": {"_type": "timestamp"}}')
    (base / "not-a-key.key").write_text("hello")
    (base / "url-number.toml").write_text("[msk]\nurl = 5\n")
    return base


def zipfile_of(tar_bytes: bytes) -> bytes:
    """A zip of the files of a tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar, zipfile.ZipFile(out, "w") as zf:
        for m in tar.getmembers():
            if m.isfile():
                zf.writestr(m.name, tar.extractfile(m).read())
    return out.getvalue()


REPO = "{repo}"
CASES = [
    # (id, args, exit code, error code, what the message must name)
    ("scheme", ["ingest", "s4://bucket/b.tar", "-p", PRODUCT, "-v", "2"], 2, "INVALID_LOCATION", "s4://bucket/b.tar"),
    ("one-slash", ["--repo", "s3:/bucket/x", "ls"], 2, "INVALID_LOCATION", "s3:/bucket/x"),
    ("missing-source", ["ingest", "{base}/missing.tar", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID", "missing.tar"),
    ("truncated", ["ingest", "{base}/truncated.tar", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID",
     "truncated.tar: truncated or corrupt tar archive"),
    ("truncated-run", ["run", "{base}/truncated.tar", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID",
     "truncated.tar: truncated or corrupt tar archive"),
    ("truncated-gz", ["run", "{base}/truncated.tar.gz", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID",
     "truncated.tar.gz"),
    ("fake-zip", ["run", "{base}/fake.zip", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID", "fake.zip"),
    ("truncated-zip", ["run", "{base}/truncated.zip", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID",
     "truncated.zip: truncated or corrupt zip archive"),
    ("escape", ["ingest", "{base}/escape.tar", "-p", PRODUCT, "-v", "2"], 5, "UNSAFE_ENTRY", "../../etc/passwd"),
    ("bad-name", ["ingest", "{base}/escape.tar", "-p", "Star Fall", "-v", "2"], 2, "INVALID_NAME", "Star Fall"),
    ("bad-version", ["ingest", "{base}/escape.tar", "-p", PRODUCT, "-v", "../2"], 2, "INVALID_NAME", "../2"),
    ("bad-version-install", ["install", "--allow-unsigned", "--origin", REPO, "-p", PRODUCT, "-v", "1.0.0/..",
                             "--dest", "{base}/game"], 2, "INVALID_NAME", "1.0.0/.."),
    ("not-ingested", ["chunk", "-p", PRODUCT, "-v", "9.9"], 3, "NOT_FOUND", "9.9"),
    ("no-such-file", ["cat", "-p", PRODUCT, "-v", "1.0.0", "no/such/file"], 3, "NOT_FOUND", "no/such/file"),
    ("cat-out", ["cat", "-p", PRODUCT, "-v", "1.0.0", "README.txt", "-o", "/nonexistent/dir/x"], 9,
     "STORE_UNAVAILABLE", "/nonexistent/dir/x"),
    ("no-product", ["ls", "-p", "nosuch"], 3, "NOT_FOUND", "nosuch"),
    ("size", ["configure", "-p", PRODUCT, "--chunk-avg", "lots"], 2, "USAGE", "lots"),
    ("sizes", ["configure", "-p", "other", "--chunk-min", "1MiB", "--chunk-avg", "64KiB"], 2, "INVALID_ARGUMENT",
     "min 1048576"),
    ("http-repo", ["--repo", "https://cdn.example/depot", "chunk", "-p", PRODUCT, "-v", "1.0.0"], 2,
     "INVALID_LOCATION", "https://cdn.example/depot"),
    ("unreachable-repo", ["--s3-endpoint", "http://127.0.0.1:9", "--repo", "s3://bucket/x", "ls"], 9,
     "STORE_UNAVAILABLE", "s3://bucket/x"),
    ("repo-is-a-file", ["--repo", "{base}/a-file", "ls"], 9, "STORE_UNAVAILABLE", "a-file: is a file"),
    ("repo-is-a-file-run", ["--repo", "{base}/a-file", "run", "{base}/empty-dir", "-p", PRODUCT, "-v", "2"], 9,
     "STORE_UNAVAILABLE", "a-file: is a file"),
    ("repo-inside-build", ["run", "{base}", "-p", PRODUCT, "-v", "2"], 4, "SOURCE_INVALID", "holds the repository"),
    ("serve-no-origin", ["serve", "--origin", "{base}/nothere"], 9, "STORE_UNAVAILABLE", "nothere"),
    ("no-plan-version", ["diff", "-p", PRODUCT, "--from", "1.0.0", "--to", "9.9"], 3, "NOT_FOUND", "9.9"),
    ("promote-missing", ["promote", "-p", PRODUCT, "-v", "9.9", "-c", "stable"], 3, "NOT_FOUND", "9.9"),
    ("rm-live", ["rm", "-p", PRODUCT, "-v", "1.0.0"], 6, "VERSION_CONFLICT", "stable"),
    ("rm-missing", ["rm", "-p", PRODUCT, "-v", "9.9"], 3, "NOT_FOUND", "9.9"),
    ("rm-no-product", ["rm", "-p", "nosuch", "-v", "1.0"], 3, "NOT_FOUND", "has no product 'nosuch'"),
    ("rm-origin-missing", ["rm", "-p", PRODUCT, "-v", "9.9", "--origin", "{base}/empty-dir"], 3, "NOT_FOUND",
     "has no version 9.9"),
    ("channels-no-product", ["channels", "-p", "nosuch"], 3, "NOT_FOUND", "has no product 'nosuch'"),
    ("max-rate-zero", ["publish", "-p", PRODUCT, "-v", "1.0.0", "--origin", "{base}/origin", "--max-rate", "0"], 2,
     "USAGE", "--max-rate"),
    ("pin", ["gc", "--pin", "nonsense"], 2, "INVALID_ARGUMENT", "nonsense"),
    ("gc-not-a-store", ["gc", "--delete", "--origin", "{base}/not-a-store"], 2, "INVALID_LOCATION",
     "not-a-store is not a depot repository or origin"),
    ("gc-a-file", ["gc", "--origin", "{base}/a-file"], 9, "STORE_UNAVAILABLE", "a-file: is a file"),
    ("publish-http", ["publish", "-p", PRODUCT, "-v", "1.0.0", "--origin", "https://cdn.example/x"], 2,
     "INVALID_LOCATION", "https://cdn.example/x"),
    ("query", ["stats", "query", "SELECT nosuch FROM versions"], 2, "INVALID_ARGUMENT", "nosuch"),
    ("key-name", ["keys", "generate", "--out", "{base}/k", "bad name!"], 2, "INVALID_ARGUMENT", "bad name!"),
    ("key-name-twice", ["keys", "generate", "--out", "{base}/k3", "a", "a"], 2, "INVALID_ARGUMENT", "'a' given twice"),
    ("locations-url-number", ["--locations", "{base}/url-number.toml", "ls"], 2, "INVALID_LOCATION",
     "url-number.toml: [msk]: url must be a string"),
    ("not-a-key", ["trust", "init", "--root-key", "{base}/not-a-key.key", "--targets-key", "{base}/not-a-key.key",
                   "--snapshot-key", "{base}/not-a-key.key", "--timestamp-key", "{base}/not-a-key.key"], 2,
     "INVALID_ARGUMENT", "not-a-key.key"),
    ("locations", ["--locations", "{base}/missing.toml", "ls"], 2, "INVALID_LOCATION", "missing.toml"),
    ("no-events", ["events", "flush"], 2, "INVALID_ARGUMENT", "[events]"),
    ("locations-not-utf8", ["--locations", "{base}/truncated.tar.gz", "ls"], 2, "INVALID_LOCATION",
     "truncated.tar.gz: not a valid locations file (not UTF-8"),
    ("query-before-export", ["stats", "query", "SELECT * FROM versions"], 3, "NOT_FOUND", "depot stats export"),
    ("report-out", ["stats", "report", "--out", "{base}/a-file/report.html"], 9, "STORE_UNAVAILABLE",
     "a-file/report.html: cannot write the report"),
    ("mistyped-origin", ["install", "--allow-unsigned", "--origin", "htp://cdn.example/depot", "-p", PRODUCT,
                         "-v", "1.0.0", "--dest", "{base}/game"], 2, "INVALID_LOCATION", "htp://cdn.example/depot"),
    ("origin-name-without-its-file", ["install", "--trust", "{base}/not-root.json", "--origin", "msk", "-p", PRODUCT,
                                      "-v", "1.0.0", "--dest", "{base}/game"], 9, "STORE_UNAVAILABLE",
     "msk: no such directory, and no origin of that name in the locations file"),
    ("dead-origin", ["install", "--allow-unsigned", "--retries", "0", "--origin", "http://127.0.0.1:9/depot",
                     "-p", PRODUCT, "-v", "1.0.0", "--dest", "{base}/game"], 10, "CDN_UNREACHABLE", "127.0.0.1:9"),
    ("no-version", ["install", "--allow-unsigned", "--origin", REPO, "-p", PRODUCT, "-v", "9.9",
                    "--dest", "{base}/game"], 3, "NOT_FOUND", "9.9"),
    ("no-trust", ["install", "--origin", REPO, "-p", PRODUCT, "-v", "1.0.0", "--dest", "{base}/game"], 17,
     "TRUST_MISSING", REPO),
    ("not-root", ["install", "--trust", "{base}/not-root.json", "--origin", REPO, "-p", PRODUCT, "-v", "1.0.0",
                  "--dest", "{base}/game"], 2, "INVALID_ARGUMENT", "not-root.json"),
    ("dest-is-file", ["install", "--allow-unsigned", "--origin", REPO, "-p", PRODUCT, "-v", "1.0.0",
                      "--dest", "{base}/a-file"], 2, "USAGE", "a-file"),
    ("verify-nothing", ["verify", "--dest", "{base}/empty-dir"], 3, "NOT_FOUND", "empty-dir"),
    ("update-nothing", ["update", "--allow-unsigned", "--origin", REPO, "--dest", "{base}/empty-dir", "--to", "1.0.0"],
     3, "NOT_FOUND", "empty-dir"),
    ("both", ["install", "--allow-unsigned", "--origin", REPO, "-p", PRODUCT, "-v", "1.0.0", "-c", "stable",
              "--dest", "{base}/game"], 2, "USAGE", "--channel"),
]


@pytest.mark.parametrize("args, exit_code, code, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_a_clean_error(world, args, exit_code, code, names):
    repo = str(world / "repo")
    args = [a.replace("{base}", str(world)).replace(REPO, repo) for a in args]
    names = names.replace(REPO, repo)
    before = tree_snapshot(world)
    directories = sorted(p for p in world.rglob("*") if p.is_dir())
    env = {**os.environ, "DEPOT_DATA_DIR": str(world / "player")}
    env.pop("DEPOT_KEYS", None)
    p = subprocess.run(DEPOT + ["--repo", repo, "--json", *args], capture_output=True, text=True, cwd=world, env=env)
    assert p.returncode == exit_code, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    error = json.loads(p.stdout)
    assert error["error"] == code and names in error["message"], error
    if code != "USAGE":
        assert len(p.stderr.strip().splitlines()) == 1 and names in p.stderr
    after = tree_snapshot(world)
    assert {k: v for k, v in after.items() if not k.startswith("player/")} == before  # nothing written, anywhere
    assert [p for p in sorted(world.rglob("*")) if p.is_dir() and "player" not in p.parts] == \
        [p for p in directories if "player" not in p.parts]  # not even a directory
    assert not (world / "game").exists() and list((world / "empty-dir").iterdir()) == []


# -- property-based: archive entry names and location URLs ----------------------------------

NAME_PARTS = st.sampled_from(["..", ".", "", "a", "b.txt", "dir", "/", "\\", "C:", "\x00", "\x1f", "é", "~", " "])


@st.composite
def entry_names(draw):
    return "".join(draw(st.lists(st.one_of(NAME_PARTS, st.just("/")), min_size=1, max_size=6)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(entry_names(), min_size=1, max_size=4), links=st.lists(entry_names(), max_size=2))
def test_any_archive_is_ingested_safely_or_refused_cleanly(tmp_path_factory, names, links):
    """Whatever the entry names and link targets, ingest either records only safe relative
    paths or refuses with UNSAFE_ENTRY / SOURCE_INVALID: never another exception."""
    import concurrent.futures as cf

    from pipeline.build.ingest import ingest
    from pipeline.errors import SourceInvalid, UnsafeEntry
    from pipeline.formats import inventory
    from pipeline.storage import open_store

    tmp = tmp_path_factory.mktemp("prop")
    members = [tar_member(n, b"x") for n in names] + [tar_member(f"link{i}", kind=tarfile.SYMTYPE, link=t)
                                                      for i, t in enumerate(links)]
    try:
        tar = write_tar(tmp / "b.tar", members)
    except (ValueError, UnicodeError):
        return  # not even a tar can hold it
    store = open_store(str(tmp / "repo"))
    with cf.ThreadPoolExecutor(2) as ex:
        try:
            ingest(store, str(tar), PRODUCT, "1", ex)
        except (UnsafeEntry, SourceInvalid):
            assert list(store.list()) == []
            return
    for e in inventory.load(store, PRODUCT, "1").entries:
        parts = e.path.split("/")
        assert e.path and not e.path.startswith("/") and "\\" not in e.path
        assert all(p not in ("", ".", "..") for p in parts)
        if e.type == "symlink":
            depth = len(parts) - 1
            for step in e.target.split("/"):
                depth += -1 if step == ".." else (0 if step in ("", ".") else 1)
                assert depth >= 0  # never above the build's root (other links aside)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "é", max_size=40))
def test_any_url_is_a_location_or_an_invalid_location(text):
    from pipeline.errors import InvalidLocation
    from pipeline.storage import Location

    try:
        loc = Location(text)
    except InvalidLocation as exc:
        assert exc.exit_code == 2
        return
    assert loc.scheme in ("file", "s3", "memory", "http", "https") and loc.url.strip()
