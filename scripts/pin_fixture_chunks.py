"""Regenerate fixtures/builds/starfall/chunks.json: the expected chunk boundaries and ids of
every fixture file, with the fixture product's chunk sizes and with the defaults.

The tests compare what depot produces against this file, so a change of chunking
behaviour shows up as a diff to review, not as silently different output. Run it only
when such a change is intended: python scripts/pin_fixture_chunks.py
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import blake3
from pyfastcdc import FastCDC

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ROOT / "fixtures" / "builds" / "starfall"
SIZES = {"fixture": (16 << 10, 64 << 10, 256 << 10), "default": (256 << 10, 1 << 20, 4 << 20)}


def pins() -> dict:
    out = {}
    for name, (lo, avg, hi) in SIZES.items():
        cdc = FastCDC(avg, min_size=lo, max_size=hi, normalized_chunking=1)
        versions = {}
        for tar_path in sorted(BUILDS.glob("*.tar")):
            files = {}
            with tarfile.open(tar_path) as tf:
                for m in tf.getmembers():
                    if m.isreg():
                        data = tf.extractfile(m).read()
                        files[m.name] = [[c.offset, c.length, blake3.blake3(c.data).hexdigest()] for c in cdc.cut_buf(data)]
            versions[tar_path.name[: -len(".tar")]] = files
        out[name] = {"min_size": lo, "avg_size": avg, "max_size": hi, "versions": versions}
    return out


if __name__ == "__main__":
    target = BUILDS / "chunks.json"
    target.write_text(json.dumps(pins(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
