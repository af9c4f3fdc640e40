"""Which version pairs to plan: one pair, every earlier version to one, the last N, or every
pair of a product (what CI asks for)."""

from __future__ import annotations

from ..core.versions import earlier
from ..errors import InvalidArgument, NotFound


def choose_pairs(product: str, versions: list[str], from_version: str | None = None, to_version: str | None = None,
                 all_from: bool = False, last: int | None = None, all_pairs: bool = False) -> list[tuple[str, str]]:
    """Pairs (old, new) among ``versions`` (chunked, oldest first), by exactly one of
    ``from_version``, ``all_from``, ``last`` and ``all_pairs``; ``to_version`` defaults to
    the newest."""
    if sum(bool(x) for x in (from_version, all_from, last, all_pairs)) != 1:
        raise InvalidArgument("give exactly one of --from, --all-from, --last N, --all-pairs")
    if all_pairs:
        return [(a, b) for i, b in enumerate(versions) for a in versions[:i]]
    to_version = to_version or (versions[-1] if versions else None)
    if to_version is None:
        raise NotFound(f"{product} has no chunked version")
    before = earlier(versions, to_version)
    sources = [from_version] if from_version else before[-last:] if last else before
    return [(a, to_version) for a in sources]
