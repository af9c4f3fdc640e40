"""Rebuild every file of every given fixture version from the repository and compare it
with the build it came from: python scripts/check_repo.py PRODUCT BUILD.tar ...

Uses DEPOT_REPO (default ./depot-repo). Exits 1 on the first difference.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

from pipeline import manifest
from pipeline.reassemble import reassemble
from pipeline.store import open_store


def main(product: str, builds: list[str]) -> int:
    store = open_store(os.environ.get("DEPOT_REPO", "./depot-repo"))
    checked = 0
    for build in builds:
        version = Path(build).name.removesuffix(".tar")
        m = manifest.load(store, product, version)
        with tarfile.open(build) as tf:
            for f in m.files:
                out = io.BytesIO()
                reassemble(store, f, out)
                if out.getvalue() != tf.extractfile(f.path).read():
                    print(f"{product} {version}: {f.path} differs", file=sys.stderr)
                    return 1
                checked += 1
    print(f"all {checked} files of {len(builds)} versions rebuilt byte-exact from {store.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
