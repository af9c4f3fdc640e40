"""A channel pointer (``channel-1``): the version a channel (stable, beta, ...) of a product
delivers."""

from __future__ import annotations

from dataclasses import dataclass

from .. import layout
from . import canonical
from .canonical import Reader

SCHEMA = "channel-1"
FORMAT = "depot.channel/1"


@dataclass(frozen=True)
class Channel:
    product: str
    channel: str
    version: str

    def to_dict(self) -> dict:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def from_dict(cls, d: dict) -> "Channel":
        return cls(d["product"], d["channel"], d["version"])


def to_bytes(c: Channel) -> bytes:
    return canonical.dumps(c.to_dict(), SCHEMA, f"channel {c.channel} of {c.product}")


def from_bytes(data: bytes, where: str) -> Channel:
    return Channel.from_dict(canonical.loads(data, SCHEMA, where))


def load(reader: Reader, product: str, channel: str) -> Channel:
    key = layout.channel_key(product, channel)
    return canonical.read(reader, key, from_bytes, f"{product} has no channel {channel!r}")
