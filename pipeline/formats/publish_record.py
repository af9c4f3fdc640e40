"""A publish record (``publish-record-1``), kept in the repository under
``logs/publishes/<product>/``: what one publish pushed to each origin, for the stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .canonical import Document

SCHEMA = "publish-record-1"
FORMAT = "depot.publish-record/1"
COUNTS = ("uploaded", "uploaded_bytes", "skipped", "skipped_bytes", "retries")


@dataclass(frozen=True)
class PublishRecord(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    id: str  # time-ordered: UTC time, then a random part
    at: str  # UTC, ISO 8601 to the second
    product: str
    versions: tuple[str, ...]
    origins: tuple[dict, ...]  # per origin: its url, the counts above and elapsed_s
    embargoed: tuple[str, ...] = ()  # of ``versions``, those sealed and not released when published
    released: tuple[str, ...] = ()  # of ``versions``, embargoed ones published with their released key

    def describe(self) -> str:
        return f"publish record {self.id}"

    def rows(self) -> list[dict]:
        return [{"product": self.product, "id": self.id, "published_at": self.at, "versions": ",".join(self.versions),
                 "origin": o["origin"], **{k: o[k] for k in COUNTS}, "elapsed_s": o["elapsed_s"],
                 "embargoed_versions": ",".join(self.embargoed), "released_versions": ",".join(self.released)}
                for o in self.origins]

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "id": self.id, "at": self.at, "product": self.product,
             "versions": list(self.versions), "origins": [dict(o) for o in self.origins]}
        d.update({k: list(v) for k, v in (("embargoed", self.embargoed), ("released", self.released)) if v})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PublishRecord":
        return cls(d["id"], d["at"], d["product"], tuple(d["versions"]), tuple(d["origins"]),
                   tuple(d.get("embargoed", ())), tuple(d.get("released", ())))
