"""Update plans between versions whose small files are packed into shared chunks: a few
small files change, each needed chunk is counted once by its object's size, patches are
still made for packed files and dropped where their chunk comes anyway, and the player's
update gives the new version byte for byte."""

from __future__ import annotations

import pytest

from helpers import assert_installed, fetcher
from depot_testing.packed import PRODUCT, VERSIONS, chunk_packed_versions, write_builds
from pipeline import layout
from pipeline.client.install import install
from pipeline.client.update import update
from pipeline.formats import manifest, plan as plan_doc


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("packed")
    builds = write_builds(root / "builds")
    return chunk_packed_versions(root / "repo", builds), builds, root / "repo"


# What each pair's plan does beyond keeping files: 2.0 edits two text files and adds one,
# all in one packed chunk that the added file needs anyway, so the edits come with it;
# the edited icon is patched (its chunk is fetched for no file). 3.0 edits two text files
# (patched) and adds an icon straddling two chunks.
EXPECTED_OPS = {
    ("1.0", "2.0"): {"text/b/file17.txt": "chunks", "text/b/file17a.txt": "chunks", "text/f/file52.txt": "chunks",
                     "ui/icon12.bin": "patch"},
    ("2.0", "3.0"): {"text/a/file02.txt": "patch", "text/d/file34.txt": "patch", "ui/icon33a.bin": "chunks"},
}


@pytest.mark.parametrize("pair", sorted(EXPECTED_OPS))
def test_a_plan_between_packed_versions_counts_each_chunk_once_and_patches_packed_files(packed, pair):
    store, _, _ = packed
    old, new = (manifest.load(store, PRODUCT, v) for v in pair)
    plan = plan_doc.load(store, PRODUCT, *pair)
    ops = {op.path: op for op in plan.files}
    assert {p: op.op for p, op in ops.items() if op.op != "keep"} == EXPECTED_OPS[pair]
    changed = [new.entry(p) for p in EXPECTED_OPS[pair]]
    assert all(not c.whole for f in changed for c in f.chunks)  # every one of them packed

    def stored(key: str) -> int:
        return len(store.get(key))

    def fetch_cost(path: str) -> int:  # the file's chunks the old version lacks, whole, each once
        return sum(stored(layout.chunk_key(i)) for i in {c.id for c in new.entry(path).chunks} - old_ids)

    old_ids = {c.id for f in old.files for c in f.chunks}
    new_ids = {c.id for f in new.files for c in f.chunks} - old_ids
    fetched = {c.id for f in changed if ops[f.path].op == "chunks" for c in f.chunks if c.id not in old_ids}
    assert len(fetched) == {("1.0", "2.0"): 1, ("2.0", "3.0"): 2}[pair]
    patches = [s for op in plan.files for s in op.segments]
    assert all(s.patch_size == stored(layout.patch_key(s.id)) for s in patches)
    assert plan.delta_download_bytes == sum(stored(layout.chunk_key(i)) for i in fetched) + \
        sum(s.patch_size for s in patches)
    assert plan.chunk_download_bytes == sum(stored(layout.chunk_key(i)) for i in new_ids)
    for op in plan.files:
        if op.op == "chunks":
            assert op.download_bytes == fetch_cost(op.path)
        if op.op == "patch":  # a few bytes, where fetching would take a whole chunk
            assert op.patch_bytes * 100 < fetch_cost(op.path)


def test_a_player_updates_packed_versions_by_their_plans_byte_for_byte(packed, tmp_path):
    store, builds, repo = packed
    dest = tmp_path / "game"
    install(fetcher(repo), PRODUCT, VERSIONS[0], dest)
    for a, b in zip(VERSIONS, VERSIONS[1:]):
        r = update(fetcher(repo), dest, to_version=b)
        plan = plan_doc.load(store, PRODUCT, a, b)
        assert (r.method, r.route, r.bytes_downloaded) == ("delta", [a, b], plan.delta_download_bytes)
        assert r.patches_applied == plan.count("patch")
        assert_installed(dest, builds[b])
