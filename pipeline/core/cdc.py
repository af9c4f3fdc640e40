"""Content-defined chunk boundaries (FastCDC 2020 via pyfastcdc), serial or by segments.

A FastCDC cut depends only on the bytes from the start of the current chunk, so two
chains of cuts started at different offsets of the same data coincide for ever once they
share one boundary. A large file is therefore cut in segments, each chain started a lead
of ``overlap`` bytes before its segment (by the segment's start it has nearly always met
the chain coming from the left) and run until every chunk starting in the segment is
whole; then the chains are stitched: the chain coming from the left replaces the right
segment's chain up to their first common boundary. The result is exactly the serial
chain (the tests compare the two on every fixture and on adversarial data).
"""

from __future__ import annotations

import bisect
import functools
from typing import Callable

from pyfastcdc import FastCDC

from .chunk_params import ChunkParams

READ_WINDOW = 4 << 20  # bytes read at a time: a task's buffer is this and a maximum chunk


def read_window(params: ChunkParams) -> int:
    """How much of a file a task reads at a time, whatever its segment's size: at least a
    maximum chunk (each window then gives a whole chunk or more), small enough that every
    worker's buffer stays small."""
    return max(READ_WINDOW, params.max_size)


@functools.lru_cache(maxsize=8)
def _fastcdc(params: ChunkParams) -> FastCDC:
    # Read-only after construction; iterators over it keep their own position.
    return FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size, normalized_chunking=1)


def boundaries(buf, start: int, params: ChunkParams, at_eof: bool) -> list[int]:
    """Boundaries of the chain started at ``start``, for ``buf`` = the data from ``start``.

    Returns ``[start, b1, b2, ...]``, absolute offsets. Only *genuine* chunks are kept: when
    the buffer does not reach the end of the file, a chunk whose cut could depend on bytes
    beyond the buffer (one starting within ``max_size`` of its end) is dropped.
    """
    end = start + len(buf)
    cuts = [start]
    for c in _fastcdc(params).cut_buf(buf):
        if not at_eof and start + c.offset + params.max_size > end:
            break
        cuts.append(start + c.offset + c.length)
    return cuts


ReadFn = Callable[[int, int], bytes]


def serial_boundaries(read: ReadFn, size: int, params: ChunkParams, start: int = 0, stop_at: set[int] | None = None) -> list[int]:
    """The chain from ``start``, read window by window, until the end of the file or a
    boundary in ``stop_at``. Memory is bounded by the window, whatever the file size."""
    window = read_window(params)
    chain = [start]
    while chain[-1] < size:
        pos = chain[-1]
        n = min(window, size - pos)
        cuts = boundaries(read(pos, n), pos, params, at_eof=pos + n == size)
        for b in cuts[1:]:
            chain.append(b)
            if stop_at is not None and b in stop_at:
                return chain
    return chain


def segment_starts(size: int, params: ChunkParams) -> list[int]:
    return list(range(0, size, params.segment)) or [0]


def segment_window(size: int, seg_start: int, params: ChunkParams) -> tuple[int, int]:
    """The byte range a segment's chain is computed over: the lead before the segment, the
    segment, and one maximum chunk after it, so that every chunk starting in the segment
    is whole."""
    start = max(0, seg_start - params.overlap)
    end = min(seg_start + params.segment + params.max_size, size)
    return start, end - start


def stitch(chains: list[list[int]], read: ReadFn, size: int, params: ChunkParams) -> list[int]:
    """Join per-segment chains (chain i started at segment i's start) into the serial chain.

    Where a left chain runs out before meeting the right one (long runs of identical bytes
    can keep chains apart), the true chain is continued serially from the source.
    """
    true = list(chains[0])
    for right in chains[1:]:
        if true[-1] >= right[-1]:
            continue  # the true chain already covers this segment
        right_set = set(right)
        i = bisect.bisect_left(true, right[0])
        meet = next((b for b in true[i:] if b in right_set), None)
        if meet is None:
            extension = serial_boundaries(read, size, params, start=true[-1], stop_at=right_set)
            true.extend(extension[1:])
            meet = true[-1]
            if meet not in right_set:
                continue  # reached the end of the file without meeting
        del true[bisect.bisect_right(true, meet) :]
        true.extend(right[bisect.bisect_right(right, meet) :])
    return true
