"""The inventory as stored: one zstd frame of its canonical JSON, a fraction of the JSON's
bytes on many small files; an inventory stored as plain JSON, as ingest wrote it before,
still read; a damaged frame refused naming the key."""

from __future__ import annotations

import pytest
import zstandard

from depot_testing.fixtures import PRODUCT
from pipeline import layout
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.errors import ManifestInvalid
from pipeline.formats import inventory
from pipeline.formats.canonical import canonical
from pipeline.storage import open_store

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _build(root, n: int = 600):
    """``n`` small files in nested directories (names, sizes and digests as a game's
    scripts and localisation would have), and an empty directory."""
    for i in range(n):
        path = root / f"data/lang{i % 5}/part{i // 50:02d}/string_table_{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"entry {i}\n".encode() * (1 + i % 9))
    (root / "saves").mkdir()
    return root


@pytest.fixture
def repo(tmp_path):
    return open_store(str(tmp_path / "repo"))


def test_the_inventory_is_stored_as_one_zstd_frame_of_its_canonical_json(repo, threads, tmp_path):
    src = _build(tmp_path / "src")
    ingest(repo, str(src), PRODUCT, "1", threads)
    stored = repo.get(layout.inventory_key(PRODUCT, "1"))
    assert stored[:4] == ZSTD_MAGIC
    text = zstandard.ZstdDecompressor().decompress(stored)
    inv = inventory.load(repo, PRODUCT, "1")
    assert text == canonical(inv.to_dict()) == inv.canonical_json()
    assert zstandard.frame_content_size(stored) == len(text)  # its size declared, as the reader requires
    assert stored == zstandard.ZstdCompressor(level=1, write_content_size=True).compress(text)
    assert stored == inv.to_bytes() == inv.to_bytes_known_valid()
    assert inventory.decode(stored) == inv.to_dict()
    # 601 entries: the columns' JSON is about 100 bytes a file (64 of them hex digits);
    # the frame under half that
    assert len(text) > 100 * 600
    assert len(stored) < 0.5 * len(text)


def test_an_inventory_stored_as_plain_json_is_still_read_and_chunked_to_the_same_manifest(repo, threads, tmp_path):
    src = _build(tmp_path / "src")
    ingest(repo, str(src), PRODUCT, "2", threads)
    chunk(repo, PRODUCT, "2", threads)
    framed = inventory.load(repo, PRODUCT, "2")
    plain = canonical({**framed.to_dict(), "version": "1"})  # format 2 as ingest wrote it before
    repo.put(layout.inventory_key(PRODUCT, "1"), plain)
    old = inventory.load(repo, PRODUCT, "1")
    assert old.same_content(framed) and inventory.decode(plain)["version"] == "1"
    chunk(repo, PRODUCT, "1", threads)
    one, two = (zstandard.ZstdDecompressor().decompress(repo.get(layout.manifest_key(PRODUCT, v)))
                for v in ("1", "2"))
    assert one == two.replace(b'"version":"2"', b'"version":"1"')
    assert ingest(repo, str(src), PRODUCT, "1", threads).created is False  # the same build: a no-op
    assert repo.get(layout.inventory_key(PRODUCT, "1")) == plain  # left as it was


@pytest.mark.parametrize("damage, says", [
    (lambda b: b[:-5], "not one whole zstd frame"),
    (lambda b: b + b"x", "not one whole zstd frame"),
    (lambda b: zstandard.ZstdCompressor(write_content_size=False).compress(zstandard.ZstdDecompressor().decompress(b)),
     "an inventory's zstd frame must declare its size"),
    (lambda b: zstandard.ZstdCompressor(write_content_size=True).compress(b"{\"format\": "), "not JSON"),
])
def test_a_damaged_inventory_frame_is_refused_naming_the_key(repo, threads, tmp_path, damage, says):
    ingest(repo, str(_build(tmp_path / "src", 20)), PRODUCT, "1", threads)
    key = layout.inventory_key(PRODUCT, "1")
    repo.put(key, damage(repo.get(key)))
    with pytest.raises(ManifestInvalid) as err:
        inventory.load(repo, PRODUCT, "1")
    assert str(err.value).startswith(f"{repo.url_of(key)}: {says}")
    assert (err.value.code, err.value.exit_code) == ("MANIFEST_INVALID", 8)
