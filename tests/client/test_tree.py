"""The client's tree of a format 2 manifest, made from its columns, is the tree its
entries make: the same files, slices (a packed file straddling two chunks, a file cut on
its own into two chunks, one chunk held by two files), links and directories."""

from __future__ import annotations

import bisect
import itertools

import pytest

from depot_testing.fixtures import PRODUCT
from pipeline.client import tree as tree_module
from pipeline.client.tree import Tree
from pipeline.core.chunk_params import ChunkParams
from pipeline.formats import manifest
from pipeline.formats.manifest import ChunkRef, FileEntry, Manifest

PARAMS = ChunkParams(1 << 10, 4 << 10, 16 << 10)
A, B, C, D = "a" * 64, "b" * 64, "c" * 64, "d" * 64
H1, H2, H3, H4, H5, H6 = (f"{n}" * 64 for n in range(1, 7))
ENTRIES = (
    FileEntry("big.bin", "file", 7000, True, H1, chunks=(ChunkRef(0, 5000, C, 900), ChunkRef(5000, 2000, D, 2000))),
    FileEntry("copy.bin", "file", 5000, False, H2, chunks=(ChunkRef(0, 5000, C, 900),)),
    FileEntry("d/one.txt", "file", 60, False, H3, chunks=(ChunkRef(0, 60, A, 40, 0, 100),)),
    FileEntry("d/two.txt", "file", 70, True, H4, chunks=(ChunkRef(0, 40, A, 40, 60, 100), ChunkRef(40, 30, B, 50, 0, 50))),
    FileEntry("d/z.txt", "file", 20, False, H5, chunks=(ChunkRef(0, 20, B, 50, 30, 50),)),
    FileEntry("empty", "file", 0, False, H6),
    FileEntry("link", "symlink", target="big.bin"),
    FileEntry("saves", "dir"),
)


def arrays(t: Tree) -> dict:
    return {"paths": t.paths, "sizes": list(t.sizes), "execs": bytes(t.execs), "hashes": t.hashes,
            "first": list(t.first), "slices": [(t.chunks[t.slice_chunk[s]], t.slice_offset[s], t.slice_chunk_offset[s],
                                                t.slice_size[s], t.slice_file[s]) for s in range(len(t.slice_chunk))],
            "links": t.links, "dirs": t.dirs, "chunk_ordered": t.chunk_ordered}


def test_the_tree_of_the_columns_is_the_tree_of_the_entries():
    m = Manifest.from_bytes(Manifest(PRODUCT, "1", PARAMS, ENTRIES, PARAMS.min_size).to_bytes(), "m.json")
    assert m.columns is not None
    of_columns = Tree(m, "m.json")
    of_entries = Tree(Manifest(PRODUCT, "1", PARAMS, m.entries, PARAMS.min_size), "m.json")
    assert arrays(of_columns) == arrays(of_entries)
    assert arrays(of_columns)["first"] == [0, 2, 3, 4, 6, 7, 7]
    assert [(s[1], s[2], s[3], s[4]) for s in arrays(of_columns)["slices"][3:6]] == \
        [(0, 0, 60, 2), (0, 60, 40, 3), (40, 0, 30, 3)]  # d/two.txt straddles A and B
    assert (of_columns.sha256(3), of_columns.mode(3), of_columns.find("d/z.txt")) == (H4, 0o755, 4)
    assert not of_columns.chunk_ordered  # the pack's chunks come first in the table, big.bin's after


def _packed_entries(files: list[tuple[str, int]], cuts: list[int]) -> list[FileEntry]:
    """Files in path order, each of fewer than 1,024 bytes packed end to end into chunks of
    the sizes ``cuts`` (ids made from their number), each larger one a chunk of its own."""
    ends = list(itertools.accumulate(cuts))
    ids = [f"{k:064x}" for k in range(len(cuts))]
    out, at = [], 0  # at: the pack stream's offset
    for n, (path, size) in enumerate(files):
        refs: list[ChunkRef] = []
        if size >= PARAMS.min_size:
            refs.append(ChunkRef(0, size, f"{n + 1:x}".rjust(64, "e"), size))
        else:
            off = 0
            while off < size:
                k = bisect.bisect_right(ends, at)
                begins = ends[k] - cuts[k]
                part = min(ends[k], at + size - off) - at
                refs.append(ChunkRef(off, part, ids[k], cuts[k], at - begins, cuts[k]))
                off, at = off + part, at + part
        out.append(FileEntry(path, "file", size, n % 3 == 0, f"{n:064x}", chunks=tuple(refs)))
    assert at == ends[-1]
    return out


@pytest.mark.parametrize("window", [tree_module.WINDOW, 7])
def test_packed_files_in_runs_are_sliced_as_their_entries_say(monkeypatch, window):
    """Runs of packed files between files cut on their own, a packed file across three
    chunks, chunk ends where a file ends and where one does not, many files in a chunk;
    made into slices a window of files at a time (7: windows that end inside chunks)."""
    monkeypatch.setattr(tree_module, "WINDOW", window)
    sizes = [(n * 389) % 1023 + 1 for n in range(300)]
    sizes[10], sizes[200] = 5000, 3000  # cut on their own: three runs of packed files
    sizes[50] = 900  # across three chunks: 100 bytes of the one before, the 300 of one, 500 of the next
    files = [(f"d{n // 40}/f{n:03}", size) for n, size in enumerate(sizes)]
    packed = [s for s in sizes if s < PARAMS.min_size]
    before = sum(packed[:49])  # the bytes packed before file 50
    cuts = [before + 100, 300, 2000]
    cuts.append(sum(packed[:120]) - sum(cuts))  # ends where file 120 does
    cuts += [4000] * ((sum(packed) - sum(cuts)) // 4000)
    cuts.append(sum(packed) - sum(cuts))
    m = Manifest.from_bytes(Manifest(PRODUCT, "1", PARAMS, tuple(_packed_entries(files, cuts)),
                                     PARAMS.min_size).to_bytes(), "m.json")
    assert m.columns is not None and m.columns.types.count("f") == 2
    of_columns = Tree(m, "m.json")
    assert arrays(of_columns) == arrays(Tree(Manifest(PRODUCT, "1", PARAMS, m.entries, PARAMS.min_size), "m.json"))
    file_50 = of_columns.slices(50)
    assert [(of_columns.slice_offset[s], of_columns.slice_chunk_offset[s], of_columns.slice_size[s])
            for s in file_50] == [(0, before, 100), (100, 0, 300), (400, 0, 500)]
    # a slice a file, and one more for each chunk end inside a file (all but the one where file 120 ends)
    assert len(of_columns.slice_chunk) == 300 + len(cuts) - 1 - 1


def test_an_empty_packed_file_has_no_slice():
    """depot packs no empty file; a manifest that says one is packed gives it no slice."""
    entries = _packed_entries([("a", 10), ("b", 20), ("c", 30)], [15, 45])
    doc = manifest.decode(Manifest(PRODUCT, "1", PARAMS, tuple(entries), PARAMS.min_size).to_bytes())
    doc["entries"]["path"].insert(1, "a2")
    doc["entries"]["type"] = "pppp"
    doc["entries"]["size"].insert(1, 0)
    doc["entries"]["executable"] = "0" + doc["entries"]["executable"]
    doc["entries"]["hash_sha256"] += "f" * 64
    m = Manifest.from_bytes(manifest.encode(doc), "m.json")
    of_columns = Tree(m, "m.json")
    assert arrays(of_columns) == arrays(Tree(Manifest(PRODUCT, "1", PARAMS, m.entries, PARAMS.min_size), "m.json"))
    assert list(of_columns.first) == [0, 1, 1, 3, 4]  # b straddles the two chunks
