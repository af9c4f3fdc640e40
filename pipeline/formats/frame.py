"""A document stored as one zstd frame of its canonical JSON (a format 2 manifest, an
inventory): written at a fixed level with its size in the frame's header, read at once
into a buffer of that size, and told apart from plain JSON by its first bytes."""

from __future__ import annotations

import json

import zstandard

from ..errors import ManifestInvalid

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 3  # fixed: the same build must give the same bytes; higher levels save little on digests
MAX_JSON = 1 << 30  # a frame declaring more is refused before it is decompressed


def is_frame(data: bytes) -> bool:
    """Whether stored bytes are a zstd frame (JSON starts with "{")."""
    return data[:4] == ZSTD_MAGIC


def compress(text: bytes | bytearray, level: int = ZSTD_LEVEL) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(text)


def decompress(data: bytes, where: str, what: str = "a manifest") -> bytes:
    """The bytes of the one zstd frame ``data`` is, decompressed at once into a buffer of
    the size it declares (a stream would hold its pieces and their join at once)."""
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise ManifestInvalid(f"{where}: not a whole zstd frame ({exc})") from None
    if not 0 <= size <= MAX_JSON:
        raise ManifestInvalid(f"{where}: {what}'s zstd frame must declare its size, at most {MAX_JSON} bytes")
    try:
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:  # damaged, cut short, or followed by more bytes
        raise ManifestInvalid(f"{where}: not one whole zstd frame ({exc})") from None


def load(data: bytes, where: str, what: str = "a manifest") -> dict:
    """The JSON document in the zstd frame ``data``, its text's bytes given up once decoded
    (as json.loads decodes them): held with the parse's objects, a million files' text
    would cost a hundred MB more at the peak."""
    try:
        raw = decompress(data, where, what)
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{where}: not JSON ({exc})") from exc
