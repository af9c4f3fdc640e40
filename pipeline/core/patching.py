"""Applying a delta patch: old bytes plus a patch give the new bytes. The player's side of
the delta engines (delta.engines makes the patches), kept apart so that a client loads no
patch-making code. Patches are self-contained bytes; the engine name travels in the plan.
"""

from __future__ import annotations

import math
from typing import Callable

from ..errors import PatchFailed

ZSTD_MAX_WINDOW_LOG = 31


def window_log(old: bytes, new_size: int) -> int:
    """The zstd window that holds the old bytes (the prefix) and the new ones."""
    return min(ZSTD_MAX_WINDOW_LOG, max(20, math.ceil(math.log2(len(old) + new_size + 1))))


def _zstd_apply(old: bytes, patch: bytes, new_size: int) -> bytes:
    import pyzstd

    option: dict[int, int] = {pyzstd.DParameter.windowLogMax: window_log(old, new_size)}
    return pyzstd.decompress(patch, zstd_dict=pyzstd.ZstdDict(old, is_raw=True).as_prefix, option=option)


def _hdiff_apply(old: bytes, patch: bytes, new_size: int) -> bytes:
    import hdiffpatch

    return hdiffpatch.apply(old, patch)


def _bsdiff_apply(old: bytes, patch: bytes, new_size: int) -> bytes:
    import bsdiff4

    return bsdiff4.patch(old, patch)


_APPLY: dict[str, Callable[[bytes, bytes, int], bytes]] = {
    "zstd-prefix": _zstd_apply,
    "hdiffpatch": _hdiff_apply,
    "bsdiff4": _bsdiff_apply,
}
ENGINES = tuple(_APPLY)


def apply(engine: str, old: bytes, patch: bytes, new_size: int) -> bytes:
    """The new bytes; PatchFailed for an unknown engine, a damaged patch or the wrong size."""
    fn = _APPLY.get(engine)
    if fn is None:
        raise PatchFailed(f"unknown patch engine {engine!r}")
    try:
        out = fn(bytes(old), bytes(patch), new_size)
    except Exception as exc:  # each engine has its own error types
        raise PatchFailed(f"{engine}: {exc}") from exc
    if len(out) != new_size:
        raise PatchFailed(f"{engine}: produced {len(out)} bytes, expected {new_size}")
    return out
