"""The cheapest route over a plan index: the one function the client and the lookup service
share."""

from __future__ import annotations

from pipeline.delta.route import Route, cheapest_route
from pipeline.formats.plan_index import PlanIndex, PlanSummary


def index(*plans) -> PlanIndex:
    return PlanIndex("p", tuple(PlanSummary(*p) for p in plans))


def test_a_chain_is_taken_only_when_it_downloads_less():
    idx = index(("1", "3", 100), ("1", "2", 30), ("2", "3", 50))
    assert cheapest_route(idx, "1", "3") == Route(("1", "2", "3"), 80)
    idx = index(("1", "3", 70), ("1", "2", 30), ("2", "3", 50))
    assert cheapest_route(idx, "1", "3") == Route(("1", "3"), 70)


def test_no_route_without_plans_that_reach_the_goal():
    assert cheapest_route(None, "1", "2") is None
    assert cheapest_route(index(("1", "2", 5)), "2", "1") is None  # plans only go forward
    assert cheapest_route(index(("1", "2", 5), ("3", "4", 5)), "1", "4") is None


def test_a_zero_cost_plan_and_cycles_do_not_loop():
    idx = index(("1", "2", 0), ("2", "1", 0), ("2", "3", 10))
    assert cheapest_route(idx, "1", "3") == Route(("1", "2", "3"), 10)
