#!/usr/bin/env python3
"""A deterministic synthetic game build, gigabytes in seconds, for the ingest benchmarks.

Its mix is what chunking speed and stored bytes depend on: about 35% incompressible
(textures, audio), 30% compressible binary records, 10% text, 25% copies of shared
assets (half lightly patched). By default a few pak-like files of 100-250 MiB hold 55%
of the bytes in mixed 1-8 MiB blocks; hundreds of small files of one kind each sit in
nested directories. ``--single-file-gb N`` makes one file of mixed blocks instead;
``--small-files N`` makes N files of 100 B to 100 KiB (``--max-file-size``), a third random,
two thirds text, about 50 to a directory in nested directories.

Every file's seed comes from ``--seed`` and its path. A file already there with its
planned size is kept, so a second run is nearly free. Random bytes come from numpy's
SFC64 when numpy is installed, else from ``random``. ``make_fixtures.py`` makes the
small pinned test builds; the two share no generator. Sizes are binary (GB = GiB).

    python scripts/bench_corpus.py --out DIR [--size-gb 1.0 | --single-file-gb 4 | --small-files 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import random
import struct
import sys
import time
from dataclasses import dataclass
from typing import Iterator, TextIO

try:  # optional, only used as a faster source of random bytes
    import numpy as _np
except Exception:  # pragma: no cover - depends on the environment
    _np = None

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

KINDS = ("random", "binary", "text", "dup")
WEIGHTS = (0.35, 0.30, 0.10, 0.25)

SMALL_MIN = 4 * KiB
SMALL_MAX = 2 * MiB
BLOCK_MIN = 1 * MiB
BLOCK_MAX = 8 * MiB
LARGE_SHARE = 0.55          # fraction of the bytes that go into large files
LARGE_TARGET = 200 * MiB    # preferred size of one large file
LARGE_MAX = 250 * MiB

SMALL_FILES_MIN = 100       # the small-files tree (--small-files N)
SMALL_FILES_MAX = 100 * KiB
FILES_PER_DIR = 50

N_ASSETS = 24               # size of the shared asset library ("dup" kind)
ASSET_MIN = 256 * KiB
ASSET_MAX = 8 * MiB

EXT = {"random": ("tex", "ogg", "bk2", "dds"),
       "binary": ("mesh", "anim", "tbl", "nav"),
       "text": ("cfg", "log", "ini", "json"),
       "dup": ("tex", "mesh", "uasset", "bin")}
TOP_DIRS = ("Content", "Engine", "Plugins", "Config", "Data")
SUB_DIRS = ("Textures", "Meshes", "Audio", "Maps", "UI", "Shaders", "Anim",
            "Localization", "Scripts", "Movies", "Fonts", "Characters")


# random sources


def derive_seed(*parts: object) -> int:
    """Stable 64-bit seed from arbitrary parts (independent of PYTHONHASHSEED)."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return int.from_bytes(h.digest(), "little")


class Source:
    """Seeded source of random bytes plus a stdlib PRNG for decisions."""

    def __init__(self, seed: int):
        self.rnd = random.Random(seed)
        if _np is not None:
            self._bitgen = _np.random.SFC64(seed)
            self.bytes = self._np_bytes
        else:
            self.bytes = random.Random(seed ^ 0x5DEECE66D).randbytes

    def bytes(self, n: int) -> bytes:  # replaced per instance in __init__
        raise NotImplementedError

    def _np_bytes(self, n: int) -> bytes:
        data = self._bitgen.random_raw((n + 7) // 8).tobytes()
        return data if len(data) == n else data[:n]


def _table(values: list[int]) -> bytes:
    """256-entry translate table that maps uniform bytes onto ``values``
    (repeating a value in the list makes it proportionally more likely)."""
    return bytes(values[(i * len(values)) >> 8] for i in range(256))


KIND_T = _table([1] * 10 + [2] * 6 + [3] * 4 + [4] * 3 + [5, 6, 7, 8, 9, 10, 11, 12])
FLAG_T = _table([0] * 12 + [1] * 3 + [3, 0x80])
NIB_T = _table(list(range(16)))
LOD_T = _table([0] * 5 + [1] * 2 + [2, 3])
MOD16_T = _table(list(range(16)))
MOD32_T = _table(list(range(32)))
HI_T = _table([0] * 14 + [1, 0xFF])  # mostly-constant high bytes of coordinates

_FLOATS = [0.0, 1.0, -1.0, 0.5, 0.25, 2.0, 100.0, 0.125,
           1.5, 10.0, -0.5, 3.0, 0.75, 64.0, 1024.0, 0.1]
_FLOAT_BYTES = [struct.pack("<f", f) for f in _FLOATS]
FLOAT_T = [bytes(_FLOAT_BYTES[i & 15][j] for i in range(256)) for j in range(4)]
_NAMES = [n.encode().ljust(4, b"_")[:4] for n in (
    "rock", "tree", "wall", "door", "lamp", "crat", "barl", "fenc",
    "grss", "watr", "sand", "snow", "mtl0", "mtl1", "mtl2", "mtl3",
    "npc0", "npc1", "wpn0", "wpn1", "vfx0", "vfx1", "sfx0", "sfx1",
    "ui00", "ui01", "lod0", "lod1", "col0", "col1", "nav0", "nav1")]
NAME_T = [bytes(_NAMES[i & 31][j] for i in range(256)) for j in range(4)]
_SEQ0 = bytes(range(256))
_SEQ1 = bytes(v for v in range(256) for _ in range(256))


def _tile(pattern: bytes, offset: int, n: int) -> bytes:
    offset %= len(pattern)
    reps = (offset + n + len(pattern) - 1) // len(pattern)
    return (pattern * reps)[offset:offset + n]


# content kinds


def gen_random(src: Source, n: int) -> bytes:
    return src.bytes(n)


def gen_records(src: Source, n: int) -> bytes:
    """Table of 32-byte little-endian records: sequential id, skewed enums,
    coordinates with low-entropy high bytes, floats from a small set, a
    4-byte hash and a name from a small vocabulary."""
    m = (n + 31) // 32
    out = bytearray(m * 32)
    start = src.rnd.randrange(1 << 16) << 8
    out[0::32] = _tile(_SEQ0, 0, m)
    out[1::32] = _tile(_SEQ1, ((start >> 8) & 255) * 256, m)
    hi = (start >> 16) & 0xFF
    out[2::32] = bytes([hi]) * m
    out[4::32] = src.bytes(m).translate(KIND_T)
    out[6::32] = src.bytes(m).translate(FLAG_T)
    for base in (8, 12):  # x, y int32
        out[base::32] = src.bytes(m)
        out[base + 1::32] = src.bytes(m).translate(NIB_T)
        out[base + 2::32] = src.bytes(m).translate(HI_T)
        out[base + 3::32] = out[base + 2::32]
    out[16::32] = src.bytes(m).translate(NIB_T)  # z int16
    out[18::32] = src.bytes(m).translate(LOD_T)
    idx = src.bytes(m)
    for j in range(4):
        out[20 + j::32] = idx.translate(FLOAT_T[j])
    out[24::32] = src.bytes(m)
    out[25::32] = src.bytes(m)
    idx = src.bytes(m)
    for j in range(4):
        out[28 + j::32] = idx.translate(NAME_T[j])
    return bytes(out[:n])


def gen_pattern(src: Source, n: int) -> bytes:
    """A short structured template repeated, with sparse random patches."""
    tlen = src.rnd.choice((4 * KiB, 16 * KiB, 64 * KiB))
    out = bytearray(_tile(gen_records(src, tlen), 0, n))
    rnd = src.rnd
    npatch = max(1, n // 512)
    noise = src.bytes(npatch * 24)
    for i in range(npatch):
        p = rnd.randrange(n)
        ln = 8 + (noise[i * 24] & 15)
        out[p:p + ln] = noise[i * 24 + 1:i * 24 + 1 + ln]
    return bytes(out[:n])


def gen_binary(src: Source, n: int) -> bytes:
    parts = []
    left = n
    while left > 0:
        k = min(left, src.rnd.randint(256 * KiB, 2 * MiB))
        parts.append(gen_pattern(src, k) if src.rnd.random() < 0.3
                     else gen_records(src, k))
        left -= k
    return b"".join(parts)


_LEVELS = ("INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR")
_MODULES = ("render", "audio", "net", "physics", "ai", "streaming", "ui",
            "input", "save", "anim", "script", "loader", "shader", "vfx")
_MSGS = (
    "loaded asset {a} in {t} ms",
    "cache miss for {a}, fetching from pak {p}",
    "frame {f} took {t} ms (budget 16 ms)",
    "spawned entity {e} at ({x}, {y}, {z})",
    "connection {e} rtt={t}ms loss={l}%",
    "compiled shader variant {h} for {a}",
    "garbage collection freed {k} KB in {t} ms",
    "streaming pool usage {l}% ({k} KB)",
    "player {e} entered zone {p}",
    "retrying request {h} (attempt {l})",
    "texture {a} mip {l} resident",
    "save slot {l} written ({k} KB)",
)


def _log_message(r: int, frame: int) -> str:
    msg = _MSGS[(r >> 10) % len(_MSGS)].format(
        a=f"/Game/{_MODULES[(r >> 14) % len(_MODULES)]}/asset_{(r >> 18) & 4095:04d}",
        t=(r >> 30) & 511, p=(r >> 40) & 63, f=frame, e=(r >> 20) & 0xFFFF,
        x=((r >> 24) & 0xFFF) - 2048, y=((r >> 36) & 0xFFF) - 2048,
        z=(r >> 48) & 255, h=f"{(r >> 16) & 0xFFFFFFFF:08x}",
        l=(r >> 56) & 127, k=(r >> 28) & 0xFFFFF)
    return f"{_LEVELS[r & 7]:5s} [{_MODULES[(r >> 3) % len(_MODULES)]}] {msg}\n"


def _config_line(r: int) -> str:
    key = (_MODULES[(r >> 5) % len(_MODULES)]
           + ("Quality", "Distance", "Scale", "Enabled", "Budget", "Path")[(r >> 9) % 6])
    kind = (r >> 12) & 3
    if kind == 0:
        val = str((r >> 16) & 4095)
    elif kind == 1:
        val = ("True", "False")[(r >> 16) & 1]
    elif kind == 2:
        val = f"{((r >> 16) & 0xFFFF) / 100:.2f}"
    else:
        val = f"/Game/{_MODULES[(r >> 20) % len(_MODULES)]}/asset_{(r >> 24) & 1023:04d}"
    return f"{key}={val}\n"


class _TextPools:
    """Per-file pools of distinct formatted lines; blocks pick from them."""

    def __init__(self, rnd: random.Random):
        frame = rnd.randrange(10 ** 6)
        self.log = [_log_message(rnd.getrandbits(64), frame + i) for i in range(4096)]
        self.cfg = [_config_line(rnd.getrandbits(64)) for _ in range(1024)]


def _log_text(src: Source, pools: _TextPools, n: int) -> str:
    """Log lines: increasing millisecond timestamps + pooled messages."""
    nlines = n // 56 + 16  # upper bound on the lines needed (all are longer)
    rb = src.bytes(3 * nlines)
    pool = pools.log
    msgs = [pool[i & 4095] for i in memoryview(rb[:2 * nlines]).cast("H")]
    ts0 = src.rnd.randrange(1_600_000_000, 1_800_000_000) * 1000
    ts = itertools.accumulate(rb[2 * nlines:], initial=ts0)
    return "".join(map("{} {}".format, ts, msgs))[:n]


def _config_text(src: Source, pools: _TextPools, n: int) -> str:
    """ini-style config: a section header every 32 lines, pooled key=value lines."""
    nlines = n // 8 + 16
    rb = src.bytes(nlines)
    pool = pools.cfg
    lines = [pool[(i * 4 + (i >> 6)) & 1023] for i in rb]
    base = src.rnd.randrange(10 ** 4)
    lines[0::32] = [f"\n[{_MODULES[(base + j) % len(_MODULES)]}.Settings{base + j}]\n"
                    for j in range(len(lines[0::32]))]
    return "".join(lines)[:n]


def gen_text(src: Source, n: int, pools: _TextPools | None = None) -> bytes:
    """Mostly log files, some ini-style config (ASCII only); the lines come from ``pools``,
    else from pools of the file's own."""
    rnd = src.rnd
    pools = pools or _TextPools(rnd)
    parts, size = [], 0
    while size < n:
        k = min(n - size, rnd.randint(64 * KiB, 1 * MiB))
        text = (_config_text if rnd.random() < 0.15 else _log_text)(src, pools, k)
        chunk = text.encode("ascii")
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class AssetLibrary:
    """Shared assets that are copied into many places of the corpus."""

    def __init__(self, seed: int, count: int = N_ASSETS):
        self.seed = seed
        rnd = random.Random(derive_seed(seed, "assets"))
        self.sizes = [int(math.exp(rnd.uniform(math.log(ASSET_MIN), math.log(ASSET_MAX))))
                      for _ in range(count)]
        self.kinds = [rnd.choice(("random", "random", "binary")) for _ in range(count)]
        self._cache: dict[int, bytes] = {}

    def get(self, k: int) -> bytes:
        data = self._cache.get(k)
        if data is None:
            src = Source(derive_seed(self.seed, "asset", k))
            gen = gen_random if self.kinds[k] == "random" else gen_binary
            data = gen(src, self.sizes[k])
            self._cache[k] = data
        return data

    def pick(self, rnd: random.Random) -> int:
        # skewed: a few assets are used very often
        return min(int(rnd.expovariate(1 / 5)), len(self.sizes) - 1)


def gen_dup(src: Source, n: int, lib: AssetLibrary) -> bytes:
    """Concatenated copies of shared assets; half of them lightly patched."""
    parts, size = [], 0
    rnd = src.rnd
    while size < n:
        data = lib.get(lib.pick(rnd))
        if rnd.random() < 0.5:
            buf = bytearray(data)
            for _ in range(rnd.randint(1, 4)):
                ln = rnd.randint(16, 4096)
                p = rnd.randrange(max(1, len(buf) - ln))
                buf[p:p + ln] = src.bytes(min(ln, len(buf) - p))
            data = bytes(buf)
        k = min(n - size, len(data))
        parts.append(data[:k])
        size += k
    return b"".join(parts)


def gen_kind(kind: str, src: Source, n: int, lib: AssetLibrary, pools: _TextPools | None = None) -> bytes:
    if kind == "dup":
        return gen_dup(src, n, lib)
    if kind == "text":
        return gen_text(src, n, pools)
    return {"random": gen_random, "binary": gen_binary}[kind](src, n)


def iter_mixed_blocks(src: Source, n: int, lib: AssetLibrary) -> Iterator[tuple[str, bytes]]:
    """Mixed content in 1-8 MiB blocks with the corpus weights; bounded memory."""
    left = n
    while left > 0:
        k = min(left, src.rnd.randint(BLOCK_MIN, BLOCK_MAX))
        kind = src.rnd.choices(KINDS, WEIGHTS)[0]
        yield kind, gen_kind(kind, src, k, lib)
        left -= k


# layout


@dataclass(frozen=True)
class FileSpec:
    path: str       # relative, '/'-separated
    size: int
    kind: str       # one of KINDS, or "mixed"


def plan_tree(total: int, seed: int) -> list[FileSpec]:
    rnd = random.Random(derive_seed(seed, "plan", total))
    specs: list[FileSpec] = []
    large_total = int(total * LARGE_SHARE)
    n_large = max(2, round(large_total / LARGE_TARGET))
    while large_total / n_large > LARGE_MAX:
        n_large += 1
    jit = [rnd.uniform(0.8, 1.2) for _ in range(n_large)]
    sizes = [int(large_total * j / sum(jit)) for j in jit]
    for i, sz in enumerate(sizes):
        specs.append(FileSpec(f"Content/Paks/pakchunk{i}-Linux.pak", sz, "mixed"))
    left = total - sum(sizes)
    lo, hi = math.log(SMALL_MIN), math.log(SMALL_MAX)
    i = 0
    while left > 0:
        sz = int(math.exp(rnd.uniform(lo, hi)))
        if left - sz < SMALL_MIN:
            sz = left
        kind = rnd.choices(KINDS, WEIGHTS)[0]
        depth = rnd.randint(1, 3)
        parts = [rnd.choice(TOP_DIRS)] + [
            f"{rnd.choice(SUB_DIRS)}{rnd.randrange(4)}" for _ in range(depth)]
        name = f"{kind[0]}{i:05d}.{rnd.choice(EXT[kind])}"
        specs.append(FileSpec("/".join(parts + [name]), sz, kind))
        left -= sz
        i += 1
    return specs


def small_files_dir(k: int) -> str:
    """The k-th directory of a small-files tree: deeper as k grows (48 subdirectories a level)."""
    parts = [TOP_DIRS[k % len(TOP_DIRS)]]
    k //= len(TOP_DIRS)
    while True:
        parts.append(f"{SUB_DIRS[k % len(SUB_DIRS)]}{k // len(SUB_DIRS) % 4}")
        k //= 4 * len(SUB_DIRS)
        if not k:
            return "/".join(parts)


def plan_small_files(n: int, seed: int, max_size: int = SMALL_FILES_MAX) -> list[FileSpec]:
    """n files of SMALL_FILES_MIN..max_size bytes (log-uniform), a third random, two thirds
    text, about FILES_PER_DIR to a directory."""
    rnd = random.Random(derive_seed(seed, "small-files", n, max_size))
    lo, hi = math.log(SMALL_FILES_MIN), math.log(max_size)
    ndirs = max(1, n // FILES_PER_DIR)
    specs = []
    for i in range(n):
        kind = "random" if rnd.random() < 1 / 3 else "text"
        name = f"{small_files_dir(rnd.randrange(ndirs))}/{kind[0]}{i:07d}.{rnd.choice(EXT[kind])}"
        specs.append(FileSpec(name, int(math.exp(rnd.uniform(lo, hi))), kind))
    return specs


# generation


def write_file(root: str, spec: FileSpec, seed: int, lib: AssetLibrary, pools: _TextPools | None = None) -> None:
    path = os.path.join(root, *spec.path.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    src = Source(derive_seed(seed, "file", spec.path, spec.size))
    with open(tmp, "wb") as f:
        if spec.kind == "mixed":
            for _, block in iter_mixed_blocks(src, spec.size, lib):
                f.write(block)
        else:
            f.write(gen_kind(spec.kind, src, spec.size, lib, pools))
    os.replace(tmp, path)


def generate(out: str, size_gb: float = 1.0, single_file_gb: float = 0.0,
             seed: int = 0, verbose: bool = True, stream: TextIO | None = None,
             small_files: int = 0, max_file_size: int = SMALL_FILES_MAX) -> dict:
    """Create (or complete) the corpus in ``out``; its summary. Progress goes to ``stream``.
    With ``small_files`` N: N files of 100 B..``max_file_size`` (plan_small_files), whose
    text shares one pool of lines (a pool per file would cost more than writing the file)."""
    log = stream or sys.stdout
    t0 = time.perf_counter()
    single = bool(single_file_gb and single_file_gb > 0)
    total = int((single_file_gb if single else size_gb) * GiB)
    pools = None
    if small_files:
        specs = plan_small_files(small_files, seed, max_file_size)
        total = sum(s.size for s in specs)
        pools = _TextPools(random.Random(derive_seed(seed, "text-pools")))
    else:
        specs = [FileSpec("single.bin", total, "mixed")] if single else plan_tree(total, seed)
    os.makedirs(out, exist_ok=True)
    lib = AssetLibrary(seed)
    made = kept = made_bytes = 0
    kind_bytes = {k: 0 for k in KINDS + ("mixed",)}
    for spec in specs:
        kind_bytes[spec.kind] += spec.size
        path = os.path.join(out, *spec.path.split("/"))
        try:
            if os.stat(path).st_size == spec.size:
                kept += 1
                continue
        except FileNotFoundError:
            pass
        write_file(out, spec, seed, lib, pools)
        made += 1
        made_bytes += spec.size
    planned = {s.path for s in specs}
    extra = sum(os.path.relpath(os.path.join(d, fn), out).replace(os.sep, "/") not in planned
                for d, _, files in os.walk(out) for fn in files)
    elapsed = time.perf_counter() - t0
    large = sum(1 for s in specs if s.kind == "mixed")
    summary = {"out": os.path.abspath(out), "mode": "small-files" if small_files else "single-file" if single else "tree", "seed": seed,
               "files": len(specs), "bytes": total, "large_files": large, "small_files": len(specs) - large,
               "kind_bytes": kind_bytes, "written_files": made, "written_bytes": made_bytes, "kept_files": kept,
               "extra_files": extra, "elapsed_s": round(elapsed, 3),
               "random_source": "numpy-sfc64" if _np is not None else "python-random"}
    if verbose:
        mb_s = made_bytes / MiB / elapsed if elapsed > 0 else 0.0
        print(f"corpus {summary['out']}: {summary['mode']}, {len(specs)} files "
              f"({summary['large_files']} large, {summary['small_files']} small), "
              f"{total / MiB:.1f} MiB; wrote {made} files ({made_bytes / MiB:.1f} MiB) "
              f"in {elapsed:.1f}s ({mb_s:.0f} MiB/s), kept {kept} existing"
              + (f"; {extra} files not in the plan" if extra else ""), file=log)
    return summary


def add_options(ap: argparse.ArgumentParser,
                single_file_help: str = "instead make one file of this many GiB (mixed content)") -> None:
    """The options that shape a generated corpus (the benchmarks take them too)."""
    ap.add_argument("--size-gb", type=float, default=1.0, help="total corpus size in GiB (default 1.0)")
    ap.add_argument("--single-file-gb", type=float, default=0.0, help=single_file_help)
    ap.add_argument("--small-files", type=int, default=0, metavar="N",
                    help=f"instead make N small files ({SMALL_FILES_MIN} B to --max-file-size, "
                    "a third random, two thirds text, in nested directories)")
    ap.add_argument("--max-file-size", type=int, default=SMALL_FILES_MAX,
                    help=f"the largest of the small files, in bytes (default {SMALL_FILES_MAX})")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")


def generate_from(args, out: str, **kwargs) -> dict:
    """generate() with the options of add_options."""
    return generate(out, args.size_gb, args.single_file_gb, args.seed, small_files=args.small_files,
                    max_file_size=args.max_file_size, **kwargs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="corpus directory")
    add_options(ap)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    summary = generate_from(args, args.out, verbose=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
