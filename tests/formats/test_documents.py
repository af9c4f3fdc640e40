"""Every repository document: the same value gives the same bytes, the bytes give the value
back, and what does not match its schema is refused both ways, naming where it came from."""

from __future__ import annotations

import json

import pytest

from depot_testing.fixtures import PRODUCT
from pipeline.core.chunk_params import ChunkParams
from pipeline.errors import ManifestInvalid
from pipeline.formats.channel import Channel
from pipeline.formats.install_record import FileStamp, InstallRecord
from pipeline.formats.inventory import Entry, Inventory, SourceData
from pipeline.formats import frame, manifest
from pipeline.formats.manifest import ChunkRef, FileEntry, Manifest
from pipeline.formats.plan import FileOp, PatchSegment, Plan
from pipeline.formats.plan_index import PlanIndex, PlanSummary
from pipeline.formats.product import ProductConfig

H = "ab" * 32
MANIFEST = Manifest(PRODUCT, "1.0.0", ChunkParams(16 << 10, 64 << 10, 256 << 10),
                    (FileEntry("a.bin", "file", 3, True, H, chunks=(ChunkRef(0, 3, H, 3),)), FileEntry("d", "dir")))
DOCUMENTS = [
    Inventory(PRODUCT, "1.0.0", "/up/b.zip", "zip", SourceData("blob", key="staging/starfall/1.0.0/pack"),
              (Entry("a.bin", "file", 3, True, H, offset=7), Entry("d", "dir"), Entry("l", "symlink", target="a.bin"))),
    MANIFEST,
    MANIFEST.with_format(1),
    Plan(PRODUCT, "1.0.0", "1.1.0",
         (FileOp("a.bin", "patch", H, source="a.bin", source_sha256=H,
                 segments=(PatchSegment(0, 3, 0, 3, "zstd-prefix", H, 12),)),
          FileOp("b.bin", "copy", H, source="a.bin"), FileOp("c.bin", "chunks", H, download_bytes=9),
          FileOp("k.bin", "keep", H)),
         ("old.bin",), 21, 30, 40, 12),
    PlanIndex(PRODUCT, (PlanSummary("1.0.0", "1.1.0", 21),)),
    Channel(PRODUCT, "stable", "1.1.0"),
    ProductConfig(PRODUCT, ChunkParams(16 << 10, 64 << 10, 256 << 10, segment_size=4 << 20)),
    InstallRecord(PRODUCT, "1.1.0", ("https://cdn.example/depot",), {"a.bin": FileStamp(3, 1_700_000_000_000_000_000)}),
]
IDS = [type(d).__name__ for d in DOCUMENTS]
IDS[2] = "Manifest-1"


def text_of(doc) -> bytes:
    """The canonical JSON a document is stored as (a format 2 manifest, an inventory: inside
    its zstd frame)."""
    data = doc.to_bytes()
    return frame.decompress(data, "here") if frame.is_frame(data) else data


def stored(doc, d: dict) -> bytes:
    """Bytes holding the JSON ``d`` as ``doc`` is stored."""
    return manifest.encode(d) if isinstance(doc, Manifest) and doc.format == 2 else json.dumps(d).encode()


@pytest.mark.parametrize("doc", DOCUMENTS, ids=IDS)
def test_documents_round_trip_byte_for_byte(doc):
    data = doc.to_bytes()
    back = type(doc).from_bytes(data, "here")
    assert back == doc and back.to_bytes() == data
    text = text_of(doc)
    assert text.endswith(b"\n") and b"\n" not in text[:-1]  # canonical: one line, sorted keys
    assert json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" == text


@pytest.mark.parametrize("doc", DOCUMENTS, ids=IDS)
def test_a_document_of_another_format_is_refused_naming_where(doc):
    d = json.loads(text_of(doc))
    d["format"] = "depot.other/9"
    with pytest.raises(ManifestInvalid, match=r"^origin-x/doc\.json: not a valid .* at format"):
        type(doc).from_bytes(stored(doc, d), "origin-x/doc.json")
    with pytest.raises(ManifestInvalid, match="not JSON"):
        type(doc).from_bytes(b"{truncated", "origin-x/doc.json")


def test_an_invalid_document_is_never_written():
    bad = Channel(PRODUCT, "stable", "../1.0")
    with pytest.raises(ManifestInvalid, match="channel stable of starfall: not a valid channel-2 document at version"):
        bad.to_bytes()
    with pytest.raises(ManifestInvalid, match="at chunking"):
        ProductConfig.from_bytes(b'{"format":"depot.product/1","product":"p","chunking":{"min_size":1}}', "p.json")


@pytest.mark.parametrize("doc", [DOCUMENTS[1], DOCUMENTS[2]], ids=["Manifest", "Manifest-1"])
def test_a_schema_valid_document_with_impossible_values_is_invalid_naming_where(doc):
    d = json.loads(text_of(doc))
    d["chunking"]["min_size"] = d["chunking"]["max_size"] * 2  # min > avg: no chunker could have cut it
    with pytest.raises(ManifestInvalid, match=rf"^origin-x/m\.json: not a valid {doc.SCHEMA if doc.format == 2 else 'manifest-1'} "
                                              "document: chunk sizes"):
        Manifest.from_bytes(stored(doc, d), "origin-x/m.json")


@pytest.mark.parametrize("doc", [DOCUMENTS[0], DOCUMENTS[2]], ids=["Inventory", "Manifest-1"])
def test_an_entry_is_one_kind_only_so_any_of_its_kinds_means_exactly_one(doc):
    """The schemas list an entry's kinds with anyOf, which stops at the first that matches
    (oneOf tries them all, twice the work for every file). The two accept the same entries
    only because no entry can be of two kinds: each kind requires its own ``type``."""
    from importlib import resources

    name = "manifest-1" if isinstance(doc, Manifest) else "inventory-1"
    schema = json.loads(resources.files("depot_app.manifests").joinpath("schema", f"{name}.json").read_text())
    kinds = schema["definitions"]["entry"]["anyOf"]
    assert all("type" in k["required"] for k in kinds)
    assert sorted(k["properties"]["type"]["const"] for k in kinds) == ["dir", "file", "symlink"]
    listed = "file_entries" if isinstance(doc, Manifest) else "entries"
    if isinstance(doc, Manifest):
        data = doc.to_bytes()
    else:  # inventories are written in format 2 (columns) now; format 1 is still read
        data = json.dumps({**doc.to_dict(), "format": "depot.inventory/1",
                           "entries": [e.to_dict() for e in doc.entries]}).encode()
        assert type(doc).from_bytes(data, "x") == doc
    for i, entry in enumerate(json.loads(data)[listed]):
        for other in sorted({"dir", "file", "symlink"} - {entry["type"]}):  # its fields, another kind
            changed = json.loads(data)
            changed[listed][i]["type"] = other
            with pytest.raises(ManifestInvalid):
                type(doc).from_bytes(json.dumps(changed).encode(), "x")
