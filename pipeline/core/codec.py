"""Chunk objects: how a chunk's bytes are identified, stored and checked on the way back.

A chunk's id is the BLAKE3 of its uncompressed bytes. Its stored object is a zstd frame
when that is smaller than the chunk, otherwise the raw bytes; a reader that knows the
chunk's size tells the two apart by length alone (a frame is always shorter). Every read
re-hashes, so a damaged or substituted object is refused, never used.
"""

from __future__ import annotations

import threading

import blake3
import zstandard

from ..errors import IntegrityError

ZSTD_LEVEL = 3  # fixed per store: stored sizes in manifests must not depend on who wrote first
SAMPLES, SAMPLE = 4, 8 << 10  # tried first at level 1: spread evenly, the first at the start, the last at the end
SAMPLE_KEEP = 0.9  # samples that all stay above this share of their size: the chunk is stored raw

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # zstandard contexts are not safe to share between threads.
    c = getattr(_local, "compressor", None)
    if c is None:
        c = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _prober() -> zstandard.ZstdCompressor:
    c = getattr(_local, "prober", None)
    if c is None:
        c = _local.prober = zstandard.ZstdCompressor(level=1)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def release() -> None:
    """Drop the calling thread's zstd contexts (a few MB each, sized by the largest chunk
    they compressed): a worker done with a task need not hold them while it waits."""
    _local.__dict__.clear()


def _worth_compressing(data) -> bool:
    if len(data) <= SAMPLES * SAMPLE:
        return True
    step = (len(data) - SAMPLE) // (SAMPLES - 1)
    probe = _prober()
    return any(len(probe.compress(data[i * step: i * step + SAMPLE])) <= SAMPLE * SAMPLE_KEEP for i in range(SAMPLES))


def chunk_id(data) -> str:
    return blake3.blake3(data).hexdigest()


def encode(data) -> bytes:
    """The stored form of a chunk: compressed if that shrinks it, else raw.

    Most of a game's bytes are compressed already (textures, audio, video): a chunk none of
    whose samples shrinks by a tenth at zstd's fastest level is stored raw without
    compressing the whole, at a sixth of the cost. The decision depends on the chunk's
    bytes alone, so a chunk's stored size does not depend on who stored it first."""
    if not _worth_compressing(data):
        return bytes(data)
    packed = _compressor().compress(data)
    return packed if len(packed) < len(data) else bytes(data)


def holds(expected_id: str, stored: bytes) -> bool:
    """Whether a stored object is the chunk ``expected_id``, its size not known: raw, or a
    frame (frames carry their size)."""
    if chunk_id(stored) == expected_id:
        return True
    try:
        return chunk_id(_decompressor().decompress(stored)) == expected_id
    except zstandard.ZstdError:
        return False


def decode(expected_id: str, stored: bytes, size: int) -> bytes:
    """The chunk's bytes, checked against its id; raises IntegrityError otherwise."""
    if len(stored) == size:
        data = stored
    else:
        try:
            data = _decompressor().decompress(stored, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"chunk {expected_id}: stored object is corrupt ({exc})") from exc
    if len(data) != size or chunk_id(data) != expected_id:
        raise IntegrityError(f"chunk {expected_id}: bytes do not match the chunk id")
    return data
