"""Channels: promote a version to a channel, roll a channel back, list them.

A pointer moves only by compare-and-swap, and every move, a rollback included, gets a
serial one higher than the pointer it replaces: clients refuse a pointer whose serial is
lower than one they have seen, so an old pointer replayed by a mirror is never followed.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Callable, Sequence

from .. import layout
from ..errors import NotFound, VersionConflict
from ..formats import channel as channel_doc
from ..formats.channel import Channel, Move
from ..formats.release import locked
from ..storage import WriteStore


def promote(store: WriteStore, product: str, version: str, channel: str) -> Channel:
    """Point ``channel`` at ``version``, once the version has its manifest."""
    return _move(store, product, channel, version, "promote",
                 lambda current: current.moved(version, "promote", _now()) if current else
                 Channel.first(product, channel, version, _now()))


def rollback(store: WriteStore, product: str, channel: str, to: str | None = None) -> Channel:
    """Point ``channel`` back at ``to``, or at the version it delivered before the current
    one: a new pointer with a higher serial, never an old one restored."""
    current = _current(store, product, channel)
    if current is None:
        raise NotFound(f"{product} has no channel {channel!r} to roll back")
    if to is None:
        to = next((m.version for m in current.history if m.version != current.version), None)
        if to is None:
            raise NotFound(f"{product} {channel} has delivered only {current.version}: give --to VERSION")
    target = to

    def rolled_back(latest: Channel | None) -> Channel:
        if latest is None:  # removed since it was read above
            raise NotFound(f"{product} has no channel {channel!r} to roll back")
        return latest.moved(target, "rollback", _now())

    return _move(store, product, channel, target, "rollback", rolled_back)


def release(store: WriteStore, product: str, version: str, also: Sequence[str] = (),
            at: str | None = None) -> list[Channel]:
    """Once ``version``'s key is released: every channel that pre-loads it, and the
    channels ``also``, point at it as released (a move of its own, "release")."""
    at = at or _now()
    names = [c.channel for c in channels(store, product) if c.version == version and c.preload]
    names += [c for c in also if c not in names]
    moved = []
    for name in names:
        current = _current(store, product, name)
        if current is not None and current.version == version and not current.preload:
            moved.append(current)  # released there already
            continue
        moved.append(_move(store, product, name, version, "release",
                           lambda latest: latest.moved(version, "release", at) if latest else
                           Channel(product, name, version, 1, (Move(1, version, "release", at),))))
    return moved


def channels(store: WriteStore, product: str) -> list[Channel]:
    """Every channel of ``product``, by name."""
    names = sorted(filter(None, map(layout.channel_of, store.list(layout.channels_prefix(product)))))
    if not names and not has_product(store, product):
        raise NotFound(f"{store.url} has no product {product!r}")
    return [channel_doc.load(store, product, name) for name in names]


def has_product(store: WriteStore, product: str) -> bool:
    """Whether ``store`` holds anything of ``product``."""
    return next(iter(store.list(f"{layout.PRODUCT_PREFIX}{layout.check_product(product)}/")), None) is not None


def _move(store: WriteStore, product: str, channel: str, version: str, action: str,
          next_pointer: Callable[[Channel | None], Channel]) -> Channel:
    key = layout.channel_key(product, channel)  # checks the names before anything is read
    if not store.has(layout.manifest_key(product, version)):
        raise NotFound(f"{product} {version} has no manifest in {store.url}: chunk it before you {action} to it")
    try:
        tagged = store.get_tagged(key)
        current, tag = Channel.from_bytes(tagged.data, store.url_of(key)), tagged.tag
    except NotFound:
        current, tag = None, None
    pointer = next_pointer(current)
    # An embargoed version not released yet is delivered as a pre-load; release moves it on.
    pointer = dataclasses.replace(pointer, preload=locked(store, product, version))
    if not store.put_if_match(key, pointer.to_bytes(), tag):
        raise VersionConflict(f"{product} {channel} was moved by someone else while you meant to {action} it to "
                              f"{version}: check `depot channels -p {product}` and try again")
    return pointer


def _current(store: WriteStore, product: str, channel: str) -> Channel | None:
    try:
        return channel_doc.load(store, product, channel)
    except NotFound:
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
