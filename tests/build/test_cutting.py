"""Cutting a range a window at a time: the same chain, chunks and digests as one cut over
the whole range, on the data that makes chains hard to follow, with a buffer of one read
window and one maximum chunk whatever the range's size."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import pytest

from pipeline.build import cutting
from pipeline.build.cutting import Spans, cut_range, store_chunks
from pipeline.core import cdc
from pipeline.core.cdc import boundaries, segment_starts, segment_window
from pipeline.core.chunk_params import ChunkParams

PARAMS = ChunkParams(1 << 10, 4 << 10, 16 << 10, segment_size=128 << 10)
WINDOW = 20 << 10  # a read window smaller than a segment's window (128 KiB + 64 KiB lead + 16 KiB)


@dataclass
class Bytes:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read_into(self, view: memoryview, offset: int) -> None:
        view[:] = self.data[offset : offset + len(view)]


def _data(kind: str) -> bytes:
    rnd = random.Random(11)
    if kind == "random":
        return rnd.randbytes(700_000)
    if kind == "zeros":  # chains cut at max size, each with its own phase
        return bytes(200_000) + rnd.randbytes(100_000) + bytes(300_001)
    pattern = rnd.randbytes(5000)
    return pattern * 60 + rnd.randbytes(10) + pattern * 40


def _files(size: int) -> list[tuple[int, int, int]]:
    """Files end to end over the data: (number, start, size)."""
    rnd, out, start = random.Random(2), [], 0
    while start < size:
        n = min(rnd.randint(1, 3000), size - start)
        out.append((len(out), start, n))
        start += n
    return out


def _spans(files: list[tuple[int, int, int]]) -> Spans:
    return Spans(*map(list, zip(*files))) if files else Spans()


def _digests(got) -> list[tuple[int, bytes]]:
    return [(n, bytes(got.digests[32 * i : 32 * i + 32])) for i, n in enumerate(got.numbers)]


def _record(view, offset: int) -> tuple[int, int, str]:
    return offset, len(view), hashlib.sha256(view).hexdigest()


@pytest.mark.parametrize("kind", ["random", "zeros", "periodic"])
def test_a_range_cut_a_window_at_a_time_gives_what_one_cut_over_it_gives(kind, monkeypatch):
    monkeypatch.setattr(cdc, "READ_WINDOW", WINDOW)
    asked = []
    monkeypatch.setattr(cutting, "_mapped", lambda n: asked.append(n) or memoryview(bytearray(n)))
    data = _data(kind)
    f, files = Bytes(data), _files(len(data))
    for seg in segment_starts(len(data), PARAMS):
        end = min(seg + PARAMS.segment, len(data))
        lo, n = segment_window(len(data), seg, PARAMS)
        whole = boundaries(data[lo : lo + n], lo, PARAMS, at_eof=lo + n == len(data))
        hashed = [(i, s, size) for i, s, size in files if seg <= s < end]
        chain, stored, digests = cut_range(f, lo, lo + n, (seg, end), PARAMS, _record, _spans(hashed))
        assert chain == whole
        assert stored == [(a, b - a, hashlib.sha256(data[a:b]).hexdigest()) for a, b in zip(whole, whole[1:])
                          if seg <= a < end]
        assert _digests(digests) == [(i, hashlib.sha256(data[s : s + size]).digest()) for i, s, size in hashed]
        around = [(i, s, size) for i, s, size in files if s < whole[-1] and s + size > whole[0]]
        again, digests = store_chunks(f, whole, PARAMS, _record, _spans(around))
        assert again == [(a, b - a, hashlib.sha256(data[a:b]).hexdigest()) for a, b in zip(whole, whole[1:])]
        assert _digests(digests) == [(i, hashlib.sha256(data[s : s + size]).digest()) for i, s, size in around]
    assert max(asked) == WINDOW + PARAMS.max_size  # whatever the segment's window (208 KiB)


def test_a_whole_file_cut_at_its_end_keeps_its_last_short_chunk():
    data = _data("random")[:50_000]
    chain, stored, digests = cut_range(Bytes(data), 0, len(data), (0, len(data)), PARAMS, _record,
                                       Spans([7], [0], [len(data)]))
    assert chain == boundaries(data, 0, PARAMS, at_eof=True) and chain[-1] == len(data)
    assert [s[1] for s in stored] == [b - a for a, b in zip(chain, chain[1:])]
    assert _digests(digests) == [(7, hashlib.sha256(data).digest())]
