"""The client's tree of a format 2 manifest, made from its columns, is the tree its
entries make: the same files, slices (a packed file straddling two chunks, a file cut on
its own into two chunks, one chunk held by two files), links and directories."""

from __future__ import annotations

from depot_testing.fixtures import PRODUCT
from pipeline.client.tree import Tree
from pipeline.core.chunk_params import ChunkParams
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
