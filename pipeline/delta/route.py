"""The cheapest way to update, as a pure function over a product's plan index: shared by
the client (which then follows it) and the lookup service (which reports its size)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ..formats.plan_index import PlanIndex


@dataclass(frozen=True)
class Route:
    versions: tuple[str, ...]  # start, ..., goal: one plan per consecutive pair
    download_bytes: int


def cheapest_route(index: PlanIndex | None, start: str, goal: str) -> Route | None:
    """The chain of plans from ``start`` to ``goal`` with the fewest bytes to download
    (Dijkstra over the index; ties go to the route found first), or None if there is none."""
    if index is None:
        return None
    edges: dict[str, list[tuple[str, int]]] = {}
    for p in index.plans:
        edges.setdefault(p.from_version, []).append((p.to_version, p.delta_download_bytes))
    best = {start: 0}
    queue = [(0, [start])]
    while queue:
        cost, path = heapq.heappop(queue)
        here = path[-1]
        if here == goal:
            return Route(tuple(path), cost)
        if cost > best.get(here, cost):
            continue
        for nxt, c in edges.get(here, ()):
            if nxt not in path and cost + c < best.get(nxt, cost + c + 1):
                best[nxt] = cost + c
                heapq.heappush(queue, (cost + c, path + [nxt]))
    return None


def update_route(index: PlanIndex | None, start: str, goal: str, chunk_cost: int) -> Route | None:
    """The chain of plans an update from ``start`` to ``goal`` takes, or None when fetching
    the goal's missing chunks (``chunk_cost`` bytes) downloads no more: the one decision
    the client acts on and the lookup service reports."""
    route = cheapest_route(index, start, goal)
    return route if route is not None and route.download_bytes < chunk_cost else None
