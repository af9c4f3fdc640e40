"""A product's plan index (``plan-index-1``): every update plan with its download size, so
that a client or a lookup service can choose a route (one plan, a chain, or chunks)
without listing the origin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from . import canonical
from .canonical import Document, Reader

SCHEMA = "plan-index-1"
FORMAT = "depot.plan-index/1"


@dataclass(frozen=True)
class PlanSummary:
    from_version: str
    to_version: str
    delta_download_bytes: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanIndex(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    plans: tuple[PlanSummary, ...]

    def describe(self) -> str:
        return f"plan index of {self.product}"

    def to_dict(self) -> dict:
        return {"format": FORMAT, "product": self.product, "plans": [p.to_dict() for p in self.plans]}

    @classmethod
    def from_dict(cls, d: dict) -> "PlanIndex":
        return cls(d["product"], tuple(PlanSummary(**p) for p in d["plans"]))


def load(reader: Reader, product: str) -> PlanIndex:
    return canonical.read(reader, layout.plan_index_key(product), PlanIndex.from_bytes, f"{product} has no update plans")
