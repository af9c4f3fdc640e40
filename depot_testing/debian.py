"""Debian packages the tests and benchmarks run for real (nginx, chromium, casync, ...),
installed with apt-get the first time they are needed, so a fresh machine needs nothing
done by hand. The one apt-get of the tests and the benchmarks."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess


def apt_get(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """apt-get with the arguments, asking nothing. After a failure (package lists old or
    missing), apt-get update and once more. Its stderr is kept, as text."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    res = subprocess.run(["apt-get", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = subprocess.run(["apt-get", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    return res


def ensure_binaries(binaries: dict[str, str], also: str = "") -> dict[str, str]:
    """The path of each binary ({name: Debian package}). A name is a path, or looked for
    on PATH, in /usr/sbin, and in the directories the glob ``also`` matches (newest
    first). The packages of those missing are installed in one apt-get. RuntimeError
    says why one is still missing."""
    found = {name: _which(name, also) for name in binaries}
    missing = sorted({binaries[name] for name, path in found.items() if path is None})
    if missing:
        if shutil.which("apt-get") is None:
            raise RuntimeError(f"{', '.join(n for n, p in found.items() if p is None)} not installed "
                               "and there is no apt-get to install it")
        res = apt_get("install", "-y", "--no-install-recommends", *missing)
        found = {name: _which(name, also) for name in binaries}
        if None in found.values():
            raise RuntimeError(f"apt-get install {' '.join(missing)} failed (exit {res.returncode}): "
                               f"{res.stderr.strip()[-800:]}")
    return {name: path for name, path in found.items() if path is not None}


def ensure_binary(name: str, package: str | None = None, also: str = "") -> str:
    """The path of ``name``, from Debian's ``package`` (default: ``name``) if missing."""
    return ensure_binaries({name: package or name}, also)[name]


def _which(name: str, also: str = "") -> str | None:
    if name.startswith("/"):
        return name if os.access(name, os.X_OK) else None
    extra = sorted(glob.glob(also), key=_version_key, reverse=True) if also else []
    return shutil.which(name) or shutil.which(name, path=":".join(["/usr/sbin", "/sbin", *extra]))


def _version_key(path: str) -> list[int]:
    """/usr/lib/postgresql/15/bin sorts by 15, numerically."""
    return [int(part) for part in path.split("/") if part.isdigit()]
