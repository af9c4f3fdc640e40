"""Chunk objects: which chunks are stored compressed, decided by their bytes alone."""

from __future__ import annotations

import random

import pytest
import zstandard

from pipeline.core import codec
from pipeline.errors import IntegrityError

RANDOM = random.Random(7).randbytes(1 << 20)  # what zstd cannot shrink: a compressed texture
TEXT = b"".join(b"line %d of a config file\n" % i for i in range(40_000))[: 1 << 20]


@pytest.mark.parametrize("name, data, compressed", [
    ("compressible", TEXT, True),
    ("incompressible", RANDOM, False),
    # the first 16 KiB decide: random bytes first, however well the rest would shrink
    ("a random head on text", RANDOM[:codec.PROBE] + TEXT[codec.PROBE:], False),
    ("a text head on random bytes", TEXT[:codec.PROBE] + RANDOM[codec.PROBE:], True),  # tried: the head shrinks
    ("no longer than the probe", TEXT[:codec.PROBE], True),
])
def test_a_chunk_is_stored_as_its_level_3_frame_only_when_its_head_and_the_whole_shrink(name, data, compressed):
    stored = codec.encode(data)
    if compressed:
        assert stored == zstandard.ZstdCompressor(level=3).compress(data) and len(stored) < len(data)
    else:
        assert stored == data
    cid = codec.chunk_id(data)
    assert codec.decode(cid, stored, len(data)) == data
    assert codec.encode(bytearray(data)) == stored  # the bytes decide, not who passes them


def test_a_damaged_object_is_refused():
    stored = bytearray(codec.encode(TEXT))
    stored[len(stored) // 2] ^= 1
    with pytest.raises(IntegrityError):
        codec.decode(codec.chunk_id(TEXT), bytes(stored), len(TEXT))
