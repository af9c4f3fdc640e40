"""ingest: every kind of source gives the same inventory; every bad input is refused
with its error and nothing written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile

import pytest
import zstandard

from archives import tar_member, tar_of_dir, write_tar, zip_of_dir
from helpers import DEPOT, ROOT, tree_snapshot
from depot_testing.fixtures import PRODUCT, VERSIONS, fixture_tar
from pipeline import layout
from pipeline.formats import inventory
from pipeline.formats.canonical import canonical
from pipeline.errors import InvalidKey, SourceInvalid, UnsafeEntry, VersionConflict
from pipeline.build.ingest import ingest
from pipeline.storage import open_store


@pytest.fixture
def repo(tmp_path):
    return open_store(str(tmp_path / "repo"))


def expected_entries(build_dir) -> dict:
    """What the inventory must say about a directory, read straight from the disk."""
    out = {}
    for p in sorted(build_dir.rglob("*")):
        rel = p.relative_to(build_dir).as_posix()
        if p.is_symlink():
            out[rel] = ("symlink", os.readlink(p))
        elif p.is_dir():
            if not any(p.iterdir()):
                out[rel] = ("dir",)
        else:
            data = p.read_bytes()
            out[rel] = ("file", len(data), bool(p.stat().st_mode & 0o111), hashlib.sha256(data).hexdigest())
    return out


def as_expected(inv) -> dict:
    out = {}
    for e in inv.entries:
        if e.type == "file":
            out[e.path] = ("file", e.size, e.executable, e.hash_sha256)
        elif e.type == "symlink":
            out[e.path] = ("symlink", e.target)
        else:
            out[e.path] = ("dir",)
    return out


# docs/format.md, Names: a version is [A-Za-z0-9][A-Za-z0-9._+-]{0,127}
GOOD_VERSIONS = ["7", "A", "1.0.0+build.7_rc-1", "2024.11.23-Hotfix", "z" * 128]
BAD_VERSIONS = ["", ".1", "-1", "_1", "+1", "1/2", "../1", "1 0", "1\n", "1:0", "1\\0", "1=0", "é1", "1é", "z" * 129]


def test_every_version_name_of_the_documented_form_is_accepted(repo, threads):
    from pipeline.build.chunk import chunk
    from pipeline.formats import manifest

    for version in GOOD_VERSIONS:
        ingest(repo, str(fixture_tar("1.0.0")), PRODUCT, version, threads)
        chunk(repo, PRODUCT, version, threads)
        assert manifest.load(repo, PRODUCT, version).version == version


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_a_bad_version_name_is_refused_and_nothing_written(repo, threads, version):
    with pytest.raises(InvalidKey) as err:
        ingest(repo, str(fixture_tar("1.0.0")), PRODUCT, version, threads)
    assert (err.value.code, err.value.exit_code) == ("INVALID_NAME", 2) and repr(version) in str(err.value)
    assert list(repo.list()) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_directory_inventory_matches_the_disk(repo, threads, build_dirs, version):
    r = ingest(repo, str(build_dirs[version]), PRODUCT, version, threads)
    inv = inventory.load(repo, PRODUCT, version)
    assert as_expected(inv) == expected_entries(build_dirs[version])
    assert r.created and r.kind == "directory" and r.files == len(inv.files)


def test_fixture_inventory_has_links_modes_empty_files_and_dirs(repo, threads):
    ingest(repo, str(fixture_tar("1.3.0")), PRODUCT, "1.3.0", threads)
    entries = {e.path: e for e in inventory.load(repo, PRODUCT, "1.3.0").entries}
    assert entries["starfall.sh"].type == "symlink" and entries["starfall.sh"].target == "bin/starfall"
    assert entries["docs/readme"].target == "../README.txt"
    assert entries["bin/starfall"].executable and not entries["launch.sh"].executable
    assert entries["data/empty.flag"].size == 0
    assert entries["saves"].type == "dir" and entries["mods"].type == "dir"
    assert "bin" not in entries  # non-empty directories are implied by their files


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tar.zst", "tar.bz2", "tar.xz", "zip"])
def test_archives_give_the_same_inventory_as_the_directory(repo, threads, build_dirs, tmp_path, kind):
    src = build_dirs["1.1.0"]
    path = tmp_path / f"build.{kind}"
    if kind == "zip":
        zip_of_dir(src, path)
    else:
        tar_of_dir(src, path, compression=kind.partition(".")[2])
    r = ingest(repo, str(path), PRODUCT, "1.1.0", threads)
    assert r.kind == kind
    assert as_expected(inventory.load(repo, PRODUCT, "1.1.0")) == expected_entries(src)
    packed = kind != "tar"
    assert repo.has(layout.staged_pack_key(PRODUCT, "1.1.0")) == packed


def test_same_content_again_is_a_no_op(repo, threads, build_dirs, tmp_path):
    ingest(repo, str(build_dirs["1.0.0"]), PRODUCT, "1.0.0", threads)
    before = tree_snapshot(tmp_path / "repo")
    # the same build as a zip, from elsewhere: same content, nothing new written
    again = ingest(repo, str(zip_of_dir(build_dirs["1.0.0"], tmp_path / "b.zip")), PRODUCT, "1.0.0", threads)
    assert not again.created
    assert tree_snapshot(tmp_path / "repo") == before


@pytest.mark.parametrize("second", ["dir", "zip"])
def test_different_content_under_an_existing_version_is_refused(repo, threads, build_dirs, tmp_path, second):
    ingest(repo, str(zip_of_dir(build_dirs["1.0.0"], tmp_path / "a.zip")), PRODUCT, "1.0.0", threads)
    before = tree_snapshot(tmp_path / "repo")
    other = build_dirs["1.1.0"] if second == "dir" else zip_of_dir(build_dirs["1.1.0"], tmp_path / "b.zip")
    with pytest.raises(VersionConflict) as err:
        ingest(repo, str(other), PRODUCT, "1.0.0", threads)
    assert err.value.exit_code == 6 and "1.0.0" in str(err.value)
    assert tree_snapshot(tmp_path / "repo") == before  # the first upload's pack is untouched


def test_s3_archive_source(s3, s3_bucket, threads, build_dirs, tmp_path):
    local = tar_of_dir(build_dirs["1.2.0"], tmp_path / "b.tar.zst", compression="zst")
    fs, _ = s3.resolve(s3_bucket).filesystem()
    fs.put_file(str(local), f"{s3_bucket[5:]}/uploads/b.tar.zst")
    repo = open_store(s3.resolve(f"{s3_bucket}/repo"))
    ingest(repo, f"{s3_bucket}/uploads/b.tar.zst", PRODUCT, "1.2.0", threads, locations=s3)
    assert as_expected(inventory.load(repo, PRODUCT, "1.2.0")) == expected_entries(build_dirs["1.2.0"])


def test_s3_directory_source(s3, s3_bucket, threads, build_dirs):
    fs, _ = s3.resolve(s3_bucket).filesystem()
    src = build_dirs["1.0.0"]
    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file() and not p.is_symlink()}
    for rel, data in files.items():
        fs.pipe_file(f"{s3_bucket[5:]}/builds/1.0.0/{rel}", data)
    repo = open_store(s3.resolve(f"{s3_bucket}/repo"))
    ingest(repo, f"{s3_bucket}/builds/1.0.0", PRODUCT, "1.0.0", threads, locations=s3)
    inv = inventory.load(repo, PRODUCT, "1.0.0")
    # S3 has no modes, links or empty directories: files only, each byte-for-byte hashed
    assert {e.path: e.hash_sha256 for e in inv.entries} == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


# -- bad input: refused with a clear error, nothing written ------------------------------

R, D, S, L = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

UNSAFE = {
    "absolute": [tar_member("/etc/passwd", b"x")],
    "dotdot": [tar_member("../evil", b"x")],
    "inner-dotdot": [tar_member("a/../../evil", b"x")],
    "drive": [tar_member("C:/evil", b"x")],
    "backslash": [tar_member("a\\..\\evil", b"x")],
    "link-outside": [tar_member("link", kind=S, link="../../etc")],
    "link-absolute": [tar_member("link", kind=S, link="/etc/passwd")],
    "link-escape-through-link": [tar_member("s", kind=S, link="."), tar_member("l", kind=S, link="s/..")],
    "write-through-link": [tar_member("d", kind=S, link="sub"), tar_member("d/evil", b"x")],
    "duplicate": [tar_member("a.txt", b"1"), tar_member("a.txt", b"2")],
    "file-and-dir": [tar_member("a", b"1"), tar_member("a/b", b"2")],
    "char-device": [tar_member("dev/null", kind=tarfile.CHRTYPE)],
    "fifo": [tar_member("pipe", kind=tarfile.FIFOTYPE)],
    "hardlink-outside": [tar_member("h", kind=L, link="../x")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
@pytest.mark.parametrize("compression", ["", "gz"])
def test_unsafe_entries_are_refused(repo, threads, tmp_path, case, compression):
    path = write_tar(tmp_path / f"bad.tar{'.gz' if compression else ''}", [tar_member("ok.txt", b"fine")] + UNSAFE[case], compression)
    with pytest.raises(UnsafeEntry) as err:
        ingest(repo, str(path), PRODUCT, "1.0.0", threads)
    assert err.value.exit_code == 5 and str(path) in str(err.value)
    assert list(repo.list()) == []


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_a_fifo_or_a_device_is_refused_by_name_in_a_tar_as_in_a_zip(tmp_path, kind):
    """One rule for every archive: the first special entry is refused, by name, exit 5."""
    source = tmp_path / f"build.{kind}"
    specials = [("pipe", tarfile.FIFOTYPE, stat.S_IFIFO), ("dev/null", tarfile.CHRTYPE, stat.S_IFCHR)]
    if kind == "zip":
        with zipfile.ZipFile(source, "w") as zf:
            zf.writestr("ok.txt", b"fine")
            for name, _, mode in specials:
                info = zipfile.ZipInfo(name)
                info.create_system, info.external_attr = 3, (mode | 0o644) << 16
                zf.writestr(info, b"")
    else:
        with tarfile.open(source, "w:gz" if kind == "tar.gz" else "w") as tar:
            ok = tarfile.TarInfo("ok.txt")
            ok.size = 4
            tar.addfile(ok, io.BytesIO(b"fine"))
            for name, kind_of, _ in specials:
                info = tarfile.TarInfo(name)
                info.type, info.devmajor, info.devminor = kind_of, 1, 3
                tar.addfile(info)
    repo = tmp_path / "repo"
    p = subprocess.run(DEPOT + ["--json", "--repo", str(repo), "ingest", str(source), "-p", PRODUCT, "-v", "1.0.0"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 5, p.stderr
    assert json.loads(p.stdout) == {"error": "UNSAFE_ENTRY",
                                    "message": f"{source}: pipe is a device, FIFO or other special entry"}
    assert not repo.exists() or [q for q in repo.rglob("*") if not q.is_dir()] == []


@pytest.mark.parametrize("kind", ["directory", "tar", "tar.gz", "zip"])
def test_a_build_with_a_depot_directory_at_its_top_is_refused_at_ingest(tmp_path, build_dirs, kind):
    """A top-level ``.depot/`` would land in the client's own state: ingest refuses it as
    install would, through the depot command, naming the entry, nothing written."""
    build = tmp_path / "build"
    shutil.copytree(build_dirs["1.0.0"], build, symlinks=True)
    (build / ".depot").mkdir()
    (build / ".depot" / "installed.json").write_bytes(b"{}")
    if kind == "directory":
        source = build
    elif kind == "zip":
        source = zip_of_dir(build, tmp_path / "build.zip")
    else:
        source = tar_of_dir(build, tmp_path / f"build.{kind}", kind.removeprefix("tar").lstrip("."))
    repo = tmp_path / "repo"
    p = subprocess.run(DEPOT + ["--json", "--repo", str(repo), "ingest", str(source), "-p", PRODUCT, "-v", "1.0.0"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 5, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    error = json.loads(p.stdout)
    assert error["error"] == "UNSAFE_ENTRY", error
    assert f"{source}: unsafe entry '.depot" in error["message"], error
    assert "kept for depot's own state" in error["message"], error
    assert not repo.exists() or [q for q in repo.rglob("*") if not q.is_dir()] == []


def test_device_files_in_a_directory_are_refused(repo, threads, tmp_path):
    src = tmp_path / "build"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"ok")
    os.mkfifo(src / "pipe")
    with pytest.raises(UnsafeEntry, match="pipe"):
        ingest(repo, str(src), PRODUCT, "1.0.0", threads)
    assert list(repo.list()) == []


def _truncations(tmp_path, build_dir):
    whole = tar_of_dir(build_dir, tmp_path / "whole.tar").read_bytes()
    members = tarfile.open(tmp_path / "whole.tar").getmembers()
    last = members[-1]
    cases = {
        "tar-mid-data": ("tar", whole[: len(whole) // 2]),
        # cut exactly at a member boundary: every header is intact, the end marker is not
        "tar-at-member-boundary": ("tar", whole[: last.offset]),
        "tar.gz": ("tar.gz", __import__("gzip").compress(whole)[:-100]),
        "tar.zst": ("tar.zst", zstandard.ZstdCompressor().compress(whole)[:-100]),
        "tar.xz": ("tar.xz", __import__("lzma").compress(whole)[:-100]),
        "zip": ("zip", zip_of_dir(build_dir, tmp_path / "w.zip").read_bytes()[:-200]),
        "empty-file": ("tar", b""),
        "not-an-archive": ("tar.gz", b"this is not gzip data at all" * 10),
    }
    zipped = bytearray((tmp_path / "w.zip").read_bytes())
    zipped[200] ^= 0xFF  # inside the first member's compressed data
    cases["zip-corrupt-data"] = ("zip", bytes(zipped))
    return cases


@pytest.mark.parametrize(
    "case",
    ["tar-mid-data", "tar-at-member-boundary", "tar.gz", "tar.zst", "tar.xz", "zip", "empty-file", "not-an-archive",
     "zip-corrupt-data"],
)
def test_truncated_or_corrupt_archives_are_refused(repo, threads, tmp_path, build_dirs, case):
    kind, data = _truncations(tmp_path, build_dirs["1.0.0"])[case]
    path = tmp_path / f"upload.{kind}"
    path.write_bytes(data)
    with pytest.raises(SourceInvalid) as err:
        ingest(repo, str(path), PRODUCT, "1.0.0", threads)
    assert err.value.exit_code == 4 and str(path) in str(err.value)
    assert list(repo.list()) == []


def test_missing_and_unsupported_sources(repo, threads, tmp_path):
    with pytest.raises(SourceInvalid, match="no such file"):
        ingest(repo, str(tmp_path / "nope.tar"), PRODUCT, "1.0.0", threads)
    (tmp_path / "game.rar").write_bytes(b"Rar!")
    with pytest.raises(SourceInvalid, match="not a directory or a known archive"):
        ingest(repo, str(tmp_path / "game.rar"), PRODUCT, "1.0.0", threads)
    assert list(repo.list()) == []


@pytest.mark.parametrize("name", ["../evil.dll", "/abs/evil.dll", "a/../../evil.dll"])
def test_zip_slip_entries_are_refused(repo, threads, tmp_path, name):
    import zipfile

    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(name), b"payload")
    with pytest.raises(UnsafeEntry):
        ingest(repo, str(path), PRODUCT, "1.0.0", threads)
    assert list(repo.list()) == []


def test_a_sparse_tar_entry_and_an_encrypted_zip_entry_are_refused(repo, threads, tmp_path):
    import io as _io
    import zipfile

    sparse = tarfile.TarInfo("holes.bin")
    sparse.type, sparse.size = tarfile.GNUTYPE_SPARSE, 0
    raw = _io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(sparse)
    (tmp_path / "sparse.tar").write_bytes(raw.getvalue())
    with pytest.raises(SourceInvalid, match="holes.bin is a sparse tar entry"):
        ingest(repo, str(tmp_path / "sparse.tar"), PRODUCT, "1", threads)

    with zipfile.ZipFile(tmp_path / "locked.zip", "w") as zf:
        zf.writestr("secret.dat", b"x" * 100)
    data = bytearray((tmp_path / "locked.zip").read_bytes())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag bit in both headers
        at = data.find(header)
        flag = at + (6 if header == b"PK\x03\x04" else 8)
        data[flag] |= 0x01
    (tmp_path / "locked.zip").write_bytes(bytes(data))
    with pytest.raises(SourceInvalid, match="secret.dat is encrypted"):
        ingest(repo, str(tmp_path / "locked.zip"), PRODUCT, "2", threads)
    assert list(repo.list()) == []


def test_a_zip_written_by_writestr_is_a_build_of_files(repo, threads, tmp_path):
    """zipfile.writestr gives entries permission bits but no file type: they are files."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo("bin/game"), b"\x7fELF")
        info = zipfile.ZipInfo("run.sh")
        info.external_attr = 0o755 << 16
        info.create_system = 3
        zf.writestr(info, b"#!/bin/sh\n")
    ingest(repo, str(tmp_path / "b.zip"), PRODUCT, "1", threads)
    entries = {e.path: (e.type, e.size, e.executable) for e in inventory.load(repo, PRODUCT, "1").entries}
    assert entries == {"bin/game": ("file", 4, False), "run.sh": ("file", 10, True)}


def _small_build(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "game").write_bytes(b"\x7fELF run")
    (root / "bin" / "game").chmod(0o755)
    (root / "readme.txt").write_bytes(b"hello\n")
    (root / "saves").mkdir()
    (root / "z.empty").write_bytes(b"")
    os.symlink("bin/game", root / "game")
    return root


def test_the_inventory_is_written_in_columns(repo, threads, tmp_path):
    """Format 2: one item per entry (path, type), per file (size, executable, digest,
    offset), per link (target), in path order; no object per entry."""
    src = _small_build(tmp_path / "src")
    ingest(repo, str(src), PRODUCT, "1", threads)
    doc = inventory.decode(repo.get(layout.inventory_key(PRODUCT, "1")))
    digests = "".join(hashlib.sha256(b).hexdigest() for b in (b"\x7fELF run", b"hello\n", b""))
    assert doc == {"format": "depot.inventory/2", "product": PRODUCT, "version": "1",
                   "source": {"url": str(src), "kind": "directory", "data": {"layout": "directory", "url": str(src)}},
                   "entries": {"path": ["bin/game", "game", "readme.txt", "saves", "z.empty"], "type": "flfdf",
                               "size": [8, 6, 0], "executable": "100", "hash_sha256": digests, "offset": [0, 0, 0],
                               "target": ["bin/game"]}}
    stored = repo.get(layout.inventory_key(PRODUCT, "1"))
    assert stored == zstandard.ZstdCompressor(level=1, write_content_size=True).compress(canonical(doc))
    assert inventory.load(repo, PRODUCT, "1").canonical_json() == canonical(doc)  # written a column at a time
    inv = inventory.load(repo, PRODUCT, "1")
    odd = inv.with_entries([*inv.entries, inventory.Entry('ü/"q\\', "file", 1, False, "cd" * 32, offset=3)])
    assert odd.canonical_json() == canonical(odd.to_dict())
    assert [e.to_dict() for e in inv.entries] == [
        {"path": "bin/game", "type": "file", "size": 8, "executable": True, "hash_sha256": digests[:64], "offset": 0},
        {"path": "game", "type": "symlink", "target": "bin/game"},
        {"path": "readme.txt", "type": "file", "size": 6, "executable": False, "hash_sha256": digests[64:128],
         "offset": 0},
        {"path": "saves", "type": "dir"},
        {"path": "z.empty", "type": "file", "size": 0, "executable": False, "hash_sha256": digests[128:],
         "offset": 0}]


def test_an_inventory_of_format_1_is_still_read_and_chunked_to_the_same_manifest(repo, threads, tmp_path):
    from pipeline.build.chunk import chunk

    src = _small_build(tmp_path / "src")
    ingest(repo, str(src), PRODUCT, "2", threads)
    chunk(repo, PRODUCT, "2", threads)
    inv = inventory.load(repo, PRODUCT, "2")
    old = {**inventory.decode(repo.get(layout.inventory_key(PRODUCT, "2"))), "format": "depot.inventory/1",
           "version": "1", "entries": [e.to_dict() for e in inv.entries]}  # as ingest wrote it before format 2
    repo.put(layout.inventory_key(PRODUCT, "1"), json.dumps(old).encode())
    assert inventory.load(repo, PRODUCT, "1").same_content(inv)
    chunk(repo, PRODUCT, "1", threads)
    one, two = (json.loads(zstandard.ZstdDecompressor().decompress(repo.get(layout.manifest_key(PRODUCT, v))))
                for v in ("1", "2"))
    assert {**one, "version": "2"} == two
    assert ingest(repo, str(src), PRODUCT, "1", threads).created is False  # the same build: a no-op


@pytest.mark.parametrize("column, value, why", [
    ("path", ["bin/game", "game", "saves", "readme.txt", "z.empty"], "entries/path is not in strictly increasing order"),
    ("path", ["bin/game", "game", "readme.txt", "saves", "../z"], "entries/path holds a path that is empty, absolute"),
    ("size", [8, 6], "entries/size has 2 items where the entries call for 3"),
    ("size", [8, -6, 0], "entries/size holds an item that is not a non-negative integer"),
    ("offset", [0, 0, 1.5], "entries/offset holds an item that is not a non-negative integer"),
    ("hash_sha256", "AB" * 96, "entries/hash_sha256 is not 64 lowercase hex digits per file"),
    ("target", [], "entries/target has 0 items where the entries call for 1"),
    ("type", "flfdd", "entries/size has 3 items where the entries call for 2"),
])
def test_an_inventory_whose_columns_do_not_fit_is_refused_naming_the_column(repo, threads, tmp_path, column, value, why):
    from pipeline.errors import ManifestInvalid

    ingest(repo, str(_small_build(tmp_path / "src")), PRODUCT, "1", threads)
    key = layout.inventory_key(PRODUCT, "1")
    doc = inventory.decode(repo.get(key))
    doc["entries"][column] = value
    repo.put(key, zstandard.ZstdCompressor(write_content_size=True).compress(json.dumps(doc).encode()))
    with pytest.raises(ManifestInvalid) as err:
        inventory.load(repo, PRODUCT, "1")
    assert str(err.value).startswith(f"{repo.url_of(key)}: not a valid inventory-2 document: ")
    assert why in str(err.value)
    assert (err.value.code, err.value.exit_code) == ("MANIFEST_INVALID", 8)


def test_a_directory_is_listed_in_path_order_with_only_its_empty_directories(repo, threads, tmp_path):
    """Each directory's names are taken in the order their paths sort; an empty directory
    sorts before a name it is the start of, which the listing puts right."""
    src = tmp_path / "src"
    for path in ("a/b.txt", "a.txt", "a-b/c", "e.txt", "e0/f", "f/g/h"):
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_bytes(path.encode())
    (src / "e").mkdir()
    (src / "f" / "g" / "empty").mkdir()
    ingest(repo, str(src), PRODUCT, "1", threads)
    inv = inventory.load(repo, PRODUCT, "1")
    assert (inv.paths, inv.types) == (["a-b/c", "a.txt", "a/b.txt", "e", "e.txt", "e0/f", "f/g/empty", "f/g/h"],
                                       "fffdffdf")
    assert list(inv.sizes) == [5, 5, 7, 5, 4, 5]


@pytest.mark.parametrize("name, link, why", [
    ("back\\slash", None, "unsafe entry 'sub/back\\\\slash': backslash in path"),
    ("bell\x07", None, "unsafe entry 'sub/bell\\x07': control character in path"),
    ("link", "../../outside", "link 'sub/link' -> '../../outside' points outside the build"),
    ("link", "/etc/passwd", "link 'sub/link' -> '/etc/passwd': target must be a relative path"),
])
def test_an_unsafe_name_or_link_in_a_directory_is_refused(repo, threads, tmp_path, name, link, why):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "ok.txt").write_bytes(b"fine")
    if link is None:
        (src / "sub" / name).write_bytes(b"x")
    else:
        os.symlink(link, src / "sub" / name)
    with pytest.raises(UnsafeEntry) as err:
        ingest(repo, str(src), PRODUCT, "1", threads)
    assert err.value.exit_code == 5 and str(err.value) == f"{src}: {why}"
    assert list(repo.list()) == []
