"""A channel pointer (``channel-2``): the version a channel of a product delivers.

Channels are stable, beta and the like. The serial grows with every move, a rollback
too. The pointer keeps its latest moves. ``preload`` says the version is embargoed and
not released yet, so players pre-load it. Its content stays sealed until the release
moves the pointer again, without ``preload``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from . import canonical
from .canonical import Document, Reader

SCHEMA = "channel-2"
FORMAT = "depot.channel/2"
HISTORY = 50  # moves kept in the pointer


@dataclass(frozen=True)
class Move:
    serial: int
    version: str
    action: str  # "promote", "rollback" or "release"
    at: str  # UTC, ISO 8601 to the second


@dataclass(frozen=True)
class Channel(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    channel: str
    version: str
    serial: int = 1
    history: tuple[Move, ...] = ()
    preload: bool = False

    def describe(self) -> str:
        return f"channel {self.channel} of {self.product}"

    def moved(self, version: str, action: str, at: str, preload: bool = False) -> "Channel":
        """The next pointer: to ``version``, one serial higher, the move recorded."""
        serial = self.serial + 1
        return Channel(self.product, self.channel, version, serial,
                       ((Move(serial, version, action, at),) + self.history)[:HISTORY], preload)

    @classmethod
    def first(cls, product: str, channel: str, version: str, at: str, preload: bool = False) -> "Channel":
        return cls(product, channel, version, 1, (Move(1, version, "promote", at),), preload)

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "product": self.product, "channel": self.channel, "version": self.version,
             "serial": self.serial, "history": [dict(m.__dict__) for m in self.history]}
        if self.preload:  # absent otherwise: pointers without it read and hash as before
            d["preload"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Channel":
        return cls(d["product"], d["channel"], d["version"], d["serial"], tuple(Move(**m) for m in d["history"]),
                   d.get("preload", False))


def load(reader: Reader, product: str, channel: str) -> Channel:
    key = layout.channel_key(product, channel)
    return canonical.read(reader, key, Channel.from_bytes, f"{product} has no channel {channel!r}")
