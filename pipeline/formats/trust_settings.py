"""The publisher's trust settings (``trust-settings-1``, ``trust.json`` at the repository
root): how long each role's signatures are good for. Never published to origins."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields
from typing import ClassVar

from .. import layout
from ..errors import InvalidArgument, NotFound
from . import canonical
from .canonical import Document, Reader

SCHEMA = "trust-settings-1"
FORMAT = "depot.trust-settings/1"
DAY = 86400
ROLES = ("root", "targets", "product", "snapshot", "timestamp")
LONGEST = 36500 * DAY  # a hundred years: beyond it, an expiry date is a mistake


@dataclass(frozen=True)
class Lifetimes(Document):
    """Seconds each role's signature is good for: root about a year, a product's metadata
    a quarter (re-signed with every version), snapshot a week, timestamp a day."""

    SCHEMA: ClassVar[str] = SCHEMA

    root: int = 365 * DAY
    targets: int = 365 * DAY
    product: int = 90 * DAY
    snapshot: int = 7 * DAY
    timestamp: int = 1 * DAY

    def describe(self) -> str:
        return "trust settings"

    def of(self, role: str) -> datetime.timedelta:
        """The lifetime of a TUF role (``product-<P>`` roles share ``product``)."""
        return datetime.timedelta(seconds=self.product if role.startswith("product-") else getattr(self, role))

    def with_changes(self, changes: dict[str, int]) -> "Lifetimes":
        unknown = sorted(set(changes) - set(ROLES))
        if unknown:
            raise InvalidArgument(f"unknown role {unknown[0]!r} in --expires: use one of {', '.join(ROLES)}")
        for role, seconds in changes.items():
            if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= LONGEST:
                raise InvalidArgument(f"lifetime of {role} in --expires: {seconds!r} seconds; "
                                      f"it must be at least 1 second and at most {LONGEST // DAY} days")
        return Lifetimes(**{**self.__dict__, **changes})

    def to_dict(self) -> dict:
        return {"format": FORMAT, "lifetimes": {f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_dict(cls, d: dict) -> "Lifetimes":
        return cls(**d["lifetimes"])


def load(reader: Reader) -> Lifetimes:
    """The repository's lifetimes, or the defaults."""
    try:
        return canonical.read(reader, layout.TRUST_SETTINGS_KEY, Lifetimes.from_bytes, "")
    except NotFound:
        return Lifetimes()
