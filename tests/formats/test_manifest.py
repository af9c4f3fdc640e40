"""Manifest format 2: its exact columns, the slices of packed files that follow from them,
format 1 still read (and written back as it was), and every check the schema cannot make
refused as MANIFEST_INVALID naming the column."""

from __future__ import annotations

import gc
import json

import pytest
import zstandard

from depot_testing.fixtures import PRODUCT
from pipeline.core.chunk_params import ChunkParams
from pipeline.errors import ManifestInvalid
from pipeline.formats import manifest
from pipeline.formats.manifest import Chunk, ChunkRef, FileEntry, Manifest

PARAMS = ChunkParams(1 << 10, 4 << 10, 16 << 10)
A, B, C, H = "a" * 64, "b" * 64, "c" * 64, "d" * 64  # chunk ids, and a file digest


def packed() -> Manifest:
    """Three small files packed into chunks A (100 bytes) and B (50), a file cut on its
    own into C, an empty file, a directory and a link."""
    return Manifest(PRODUCT, "1", PARAMS, (
        FileEntry("big.bin", "file", 5000, True, H, chunks=(ChunkRef(0, 5000, C, 900),)),
        FileEntry("d/one.txt", "file", 60, False, H, chunks=(ChunkRef(0, 60, A, 40, 0, 100),)),
        FileEntry("d/two.txt", "file", 70, False, H, chunks=(ChunkRef(0, 40, A, 40, 60, 100), ChunkRef(40, 30, B, 50, 0, 50))),
        FileEntry("d/z.txt", "file", 20, False, H, chunks=(ChunkRef(0, 20, B, 50, 30, 50),)),
        FileEntry("empty", "file", 0, False, H),
        FileEntry("link", "symlink", target="big.bin"),
        FileEntry("saves", "dir"),
    ), pack_below=PARAMS.min_size)


def test_a_packed_manifest_is_these_columns_in_a_zstd_frame():
    data = packed().to_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd" and zstandard.get_frame_parameters(data).content_size > 0
    assert manifest.decode(data) == {
        "format": "depot.manifest/2", "product": PRODUCT, "version": "1",
        "chunking": {"algorithm": "fastcdc-2020", "min_size": 1024, "avg_size": 4096, "max_size": 16384,
                     "chunk_id": "blake3", "compression": "zstd", "pack_below": 1024},
        "chunks": {"id": A + B + C, "size": [100, 50, 5000], "stored_size": [40, 50, 900]},
        "entries": {"path": ["big.bin", "d/one.txt", "d/two.txt", "d/z.txt", "empty", "link", "saves"],
                    "type": "fpppfld", "size": [5000, 60, 70, 20, 0], "executable": "10000",
                    "hash_sha256": H * 5, "chunks": [[2], []], "target": ["big.bin"]},
        "pack": [0, 1],
    }


def entries_alive() -> int:
    """How many entry objects exist in this process."""
    gc.collect()
    return sum(type(o) is FileEntry for o in gc.get_objects())


def test_the_slices_follow_from_the_sizes_and_the_columns_are_kept_until_entries_are_asked_for():
    data = packed().to_bytes()
    before = entries_alive()
    m = Manifest.from_bytes(data, "here")
    assert m.columns is not None and m.columns.doc == {k: manifest.decode(data)[k] for k in ("chunks", "entries", "pack")}
    assert m.totals() == {"files": 5, "bytes": 5150, "chunks": 5, "unique_chunks": 3, "unique_bytes": 5150,
                          "stored_bytes": 990}
    assert m.unique_chunks() == {A: Chunk(A, 100, 40), B: Chunk(B, 50, 50), C: Chunk(C, 5000, 900)}
    assert entries_alive() == before  # read, totalled and listed from the columns alone: no entry made
    assert m.entry("d/two.txt").chunks == (ChunkRef(0, 40, A, 40, 60, 100), ChunkRef(40, 30, B, 50, 0, 50))
    assert entries_alive() == before + 7  # asked for one: all seven made once, and kept
    assert m.entries == packed().entries and m == packed()
    assert m.totals() == Manifest(PRODUCT, "1", PARAMS, m.entries, PARAMS.min_size).totals()


def test_format_1_is_still_read_and_written_back_as_it_was():
    whole = Manifest(PRODUCT, "1", PARAMS, (FileEntry("a", "file", 3, False, H, chunks=(ChunkRef(0, 3, C, 3),)),))
    old = whole.with_format(1).to_bytes()
    assert old[:1] == b"{" and json.loads(old)["format"] == "depot.manifest/1"
    m = Manifest.from_bytes(old, "old")
    assert (m.format, m.entries) == (1, whole.entries) and m.to_bytes() == old
    with pytest.raises(ValueError, match="has no form in depot.manifest/1"):
        packed().with_format(1).to_bytes()  # format 1 cannot hold a slice


def _doc() -> dict:
    return manifest.decode(packed().to_bytes())


def _set(doc: dict, where: str, value) -> dict:
    *parents, last = where.split("/")
    d = doc
    for p in parents:
        d = d[p]
    d[last] = value
    return doc


BROKEN = [  # (id, column, value, what the message says)
    ("lengths", "entries/size", [5000, 60, 70, 20], "entries/size has 4 items where the entries call for 5"),
    ("link-targets", "entries/target", [], "entries/target has 0 items where the entries call for 1"),
    ("chunk-sizes", "chunks/stored_size", [40, 50], "chunks/stored_size has 2 items where the entries call for 3"),
    ("id-hex", "chunks/id", A + B + "C" * 64, "chunks/id is not 64 lowercase hex digits per chunk"),
    ("id-twice", "chunks/id", A + A + C, "chunks/id lists a chunk twice"),
    ("digest-hex", "entries/hash_sha256", H * 4 + "x" * 64, "entries/hash_sha256 is not 64 lowercase hex digits"),
    ("index-range", "pack", [0, 3], "a chunk index is out of range"),
    ("chunk-unused", "pack", [0], "a chunk index is out of range, or a chunk of chunks/id is held by no file"),
    ("own-tiling", "entries/chunks", [[2, 1], []], "entries/chunks/0: the chunks do not add up to the file's size"),
    ("pack-tiling", "entries/size", [5000, 60, 71, 20, 0], "pack: the chunks do not add up to the packed files' sizes"),
    ("path-dotdot", "entries/path", ["big.bin", "d/../x", "d/two.txt", "d/z.txt", "empty", "link", "saves"],
     "entries/path holds a path that is empty, absolute, or has an empty, . or .. part"),
    ("path-absolute", "entries/path", ["/big.bin", "d/one.txt", "d/two.txt", "d/z.txt", "empty", "link", "saves"],
     "entries/path holds a path that is empty, absolute"),
    ("path-order", "entries/path", ["big.bin", "d/two.txt", "d/one.txt", "d/z.txt", "empty", "link", "saves"],
     "entries/path is not in strictly increasing order"),
    ("path-twice", "entries/path", ["big.bin", "d/one.txt", "d/one.txt", "d/z.txt", "empty", "link", "saves"],
     "entries/path is not in strictly increasing order"),
    ("path-type", "entries/path", ["big.bin", 7, "d/two.txt", "d/z.txt", "empty", "link", "saves"],
     "entries/path holds an item that is not a string"),
    ("size-negative", "entries/size", [5000, 60, 70, 20, -1], "entries/size holds an item that is not a non-negative"),
]


@pytest.mark.parametrize("column, value, says", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_what_the_schema_cannot_say_is_checked_and_refused_naming_the_column(column, value, says):
    d = _doc()
    _set(d, column, value)
    with pytest.raises(ManifestInvalid, match="^origin-x/m.json: not a valid manifest-2 document: " + says.replace(".", r"\.")) as err:
        Manifest.from_bytes(manifest.encode(d), "origin-x/m.json")
    assert err.value.exit_code == 8


def test_a_type_letter_outside_fpdl_is_refused_by_the_schema():
    d = _set(_doc(), "entries/type", "fpppfly")
    with pytest.raises(ManifestInvalid, match="not a valid manifest-2 document at entries/type"):
        Manifest.from_bytes(manifest.encode(d), "m.json")


def test_only_one_whole_frame_of_a_declared_size_is_read():
    data = packed().to_bytes()
    for bad, says in [(data + b"x", "not one whole zstd frame"), (data[:-3], "not one whole zstd frame"),
                      (zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"), "must declare its size")]:
        with pytest.raises(ManifestInvalid, match=f"^m.json: (a manifest's zstd frame )?{says}"):
            Manifest.from_bytes(bad, "m.json")


def test_packed_slices_must_continue_the_stream_to_be_written():
    m = packed()
    broken = tuple(FileEntry(e.path, e.type, e.size, e.executable, e.hash_sha256, e.target,
                             (ChunkRef(0, 20, B, 50, 31, 50),) if e.path == "d/z.txt" else e.chunks) for e in m.entries)
    with pytest.raises(ValueError, match="the slices of 'd/z.txt' do not continue the pack stream"):
        Manifest(PRODUCT, "1", PARAMS, broken, PARAMS.min_size).to_bytes()


def test_a_hundred_thousand_small_files_cost_under_60_bytes_each():
    """Paths of a shape games have, sizes, digests that do not compress, slices of ~1 MiB
    pack chunks: the encoding's size, not a timing."""
    import hashlib
    import random

    rnd = random.Random(4)
    entries, stream, chunks, start = [], 0, [], 0
    for i in range(100_000):
        size = rnd.randint(100, 100_000)
        entries.append((f"data/{('ui', 'lua', 'loc')[i % 3]}/d{i // 50:04d}/f{i:06d}.{('png', 'lua', 'txt')[i % 3]}", size))
        stream += size
    while start < stream:
        n = min(stream - start, rnd.randint(256 << 10, 2 << 20))
        chunks.append(Chunk(hashlib.sha256(str(start).encode()).hexdigest(), n, n // 2))
        start += n
    from pipeline.formats.inventory import Entry, Inventory, SourceData

    inv = Inventory(PRODUCT, "1", "/b", "directory", SourceData("directory", url="/b"),
                    tuple(Entry(p, "file", s, False, hashlib.sha256(p.encode()).hexdigest()) for p, s in sorted(entries)))
    data = manifest.build(inv, ChunkParams(), {}, chunks, 256 << 10).to_bytes()
    assert len(data) / 100_000 < 60
    assert Manifest.from_bytes(data, "m").totals()["files"] == 100_000
