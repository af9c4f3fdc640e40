"""Regenerate fixtures/builds/starfall/chunks.json: the expected chunk boundaries and ids of
every fixture file, with the fixture product's chunk sizes and with the defaults.

Files smaller than the minimum chunk size (the default ``pack_below``) are packed: laid end
to end in path order and cut as one stream; such a file's pins are its slices,
[offset, size, chunk id, offset in the chunk, chunk size] (the last two left out where the
slice is the whole chunk). Other files are cut on their own: [offset, size, chunk id].

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


def slices(cdc: FastCDC, files: dict[str, bytes]) -> dict[str, list]:
    """The pins of files packed end to end in path order."""
    stream = b"".join(files[p] for p in sorted(files))
    chunks = [(c.offset, c.length, blake3.blake3(c.data).hexdigest()) for c in cdc.cut_buf(stream)] if stream else []
    out, start = {}, 0
    for path in sorted(files):
        size, pins = len(files[path]), []
        for c_start, c_size, cid in chunks:
            a, b = max(start, c_start), min(start + size, c_start + c_size)
            if a < b:
                whole = (a, b) == (c_start, c_start + c_size)
                pins.append([a - start, b - a, cid] + ([] if whole else [a - c_start, c_size]))
        out[path] = pins
        start += size
    return out


def pins() -> dict:
    out = {}
    for name, (lo, avg, hi) in SIZES.items():
        cdc = FastCDC(avg, min_size=lo, max_size=hi, normalized_chunking=1)
        versions = {}
        for tar_path in sorted(BUILDS.glob("*.tar")):
            files, packed = {}, {}
            with tarfile.open(tar_path) as tf:
                for m in tf.getmembers():
                    if m.isreg():
                        data = tf.extractfile(m).read()
                        if 0 < len(data) < lo:
                            packed[m.name] = data
                        else:
                            files[m.name] = [[c.offset, c.length, blake3.blake3(c.data).hexdigest()] for c in cdc.cut_buf(data)]
            versions[tar_path.name[: -len(".tar")]] = {**files, **slices(cdc, packed)}
        out[name] = {"min_size": lo, "avg_size": avg, "max_size": hi, "pack_below": lo, "versions": versions}
    return out


if __name__ == "__main__":
    target = BUILDS / "chunks.json"
    target.write_text(json.dumps(pins(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
