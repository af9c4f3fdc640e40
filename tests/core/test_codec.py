"""Chunk objects: which chunks are stored compressed, decided by their bytes alone."""

from __future__ import annotations

import random

import pytest
import zstandard

from pipeline.core import codec
from pipeline.errors import IntegrityError

RANDOM = random.Random(7).randbytes(1 << 20)  # what zstd cannot shrink: a compressed texture
TEXT = b"".join(b"line %d of a config file\n" % i for i in range(40_000))[: 1 << 20]


HEAD = codec.SAMPLE  # one sample's worth


@pytest.mark.parametrize("name, data, compressed", [
    ("compressible", TEXT, True),
    ("incompressible", RANDOM, False),
    # the samples decide: random bytes wherever they fall, however well the rest would shrink
    ("text between the samples", RANDOM[:HEAD] + TEXT[HEAD:(1 << 20) // 3 - HEAD] + RANDOM[(1 << 20) // 3 - HEAD:], False),
    ("a text head on random bytes", TEXT[:HEAD] + RANDOM[HEAD:], True),  # tried: the whole frame is smaller
    ("a text tail", RANDOM[:-HEAD] + TEXT[-HEAD:], True),
    ("no longer than the samples", RANDOM[:codec.SAMPLES * codec.SAMPLE], False),  # tried whole: not smaller
    ("short text", TEXT[:codec.SAMPLES * codec.SAMPLE], True),
])
def test_a_chunk_is_stored_as_its_level_3_frame_only_when_a_sample_and_the_whole_shrink(name, data, compressed):
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
