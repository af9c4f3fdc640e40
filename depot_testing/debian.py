"""Debian packages the tests and benchmarks run for real (nginx, chromium), installed with
apt-get the first time they are needed, so a fresh machine needs nothing done by hand."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess


def ensure_binary(name: str, package: str | None = None, also: str = "") -> str:
    """The path of ``name`` (PATH, /usr/sbin, or the directories the glob ``also`` matches,
    newest first), installing Debian's ``package`` (default: ``name``) when it is missing,
    with an apt-get update and a second try if the first fails. RuntimeError says why not."""
    found = _which(name, also)
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{name} is not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", package or name]
    res = subprocess.run(install, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        res = subprocess.run(install, env=env, capture_output=True, text=True)
    found = _which(name, also)
    if not found:
        raise RuntimeError(f"apt-get install {package or name} failed (exit {res.returncode}): "
                           f"{res.stderr.strip()[-800:]}")
    return found


def _which(name: str, also: str = "") -> str | None:
    extra = sorted(glob.glob(also), key=_version_key, reverse=True) if also else []
    return shutil.which(name) or shutil.which(name, path=":".join(["/usr/sbin", "/sbin", *extra]))


def _version_key(path: str) -> list[int]:
    """/usr/lib/postgresql/15/bin sorts by 15, numerically."""
    return [int(part) for part in path.split("/") if part.isdigit()]
