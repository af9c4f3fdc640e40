"""A channel pointer (``channel-1``): the version a channel (stable, beta, ...) of a product
delivers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from . import canonical
from .canonical import Document, Reader

SCHEMA = "channel-1"
FORMAT = "depot.channel/1"


@dataclass(frozen=True)
class Channel(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    channel: str
    version: str

    def describe(self) -> str:
        return f"channel {self.channel} of {self.product}"

    def to_dict(self) -> dict:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def from_dict(cls, d: dict) -> "Channel":
        return cls(d["product"], d["channel"], d["version"])


def load(reader: Reader, product: str, channel: str) -> Channel:
    key = layout.channel_key(product, channel)
    return canonical.read(reader, key, Channel.from_bytes, f"{product} has no channel {channel!r}")
