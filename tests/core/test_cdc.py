"""Content-defined chunking: chains cut by segments and stitched equal the serial chain,
on the data that makes stitching hard; chunk sizes are checked with a clear error."""

from __future__ import annotations

import random

import pytest

from pipeline.core.cdc import boundaries, segment_starts, segment_window, serial_boundaries, stitch
from pipeline.core.chunk_params import ChunkParams
from pipeline.errors import InvalidArgument

PARAMS = ChunkParams(4 << 10, 16 << 10, 64 << 10, segment_size=256 << 10)


def _data(kind: str) -> bytes:
    rnd = random.Random(11)
    if kind == "random":
        return rnd.randbytes(3_000_000)
    if kind == "zeros":  # every chain cuts at max size with its own phase: they never meet
        return bytes(700_000) + rnd.randbytes(400_000) + bytes(1_300_001)
    pattern = rnd.randbytes(5000)
    return pattern * 300 + rnd.randbytes(10) + pattern * 200


@pytest.mark.parametrize("kind", ["random", "zeros", "periodic"])
def test_stitched_segments_equal_the_serial_chain(kind):
    data = _data(kind)
    read = lambda off, n: data[off : off + n]
    serial = serial_boundaries(read, len(data), PARAMS)
    chains = []
    for start in segment_starts(len(data), PARAMS):
        s, n = segment_window(len(data), start, PARAMS)
        chains.append(boundaries(data[s : s + n], s, PARAMS, at_eof=s + n == len(data)))
    assert len(chains) > 4
    assert stitch(chains, read, len(data), PARAMS) == serial
    assert serial[0] == 0 and serial[-1] == len(data)
    sizes = [b - a for a, b in zip(serial, serial[1:])]
    assert all(s <= PARAMS.max_size for s in sizes) and all(s >= PARAMS.min_size for s in sizes[:-1])


@pytest.mark.parametrize("sizes, why", [
    ((64 << 10, 16 << 10, 256 << 10), "64 <= min <= avg <= max, got min 65536, avg 16384, max 262144 bytes"),
    ((16 << 10, 8 << 20, 16 << 20), "out of range"),
    ((16 << 10, 64 << 10, 256 << 10, 512 << 10), "segment size 524288 must be at least 4 x the max chunk size"),
])
def test_bad_chunk_sizes_are_a_clear_error(sizes, why):
    with pytest.raises(InvalidArgument) as err:
        ChunkParams(*sizes)
    assert why in str(err.value) and err.value.exit_code == 2 and "ChunkParams(" not in str(err.value)
