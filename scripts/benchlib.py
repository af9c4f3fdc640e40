"""Small helpers shared by the benchmark scripts (standard library only).

Measuring, the depot and casync runs and the corpus live in ``bench_ingest.py``;
this module holds what every script needs, including ``release_pairs.py``,
which runs without psutil.

Units are binary: MiB = 2**20 bytes.
"""

from __future__ import annotations

import hashlib
import shutil
import sys

MiB = 1 << 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    buf = bytearray(1 * MiB)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def remove_workdir(workdir: str, keep: bool) -> None:
    """End of a run: remove the temporary directory, or say where it was kept."""
    if keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------
# report


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def verdict(ok) -> str:
    """A goal's outcome: True, False or None (not measured)."""
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")
