"""Channels: pointers written last, by compare-and-swap, with a serial that only grows."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from helpers import run_together
from depot_testing.fixtures import PRODUCT, VERSIONS
from pipeline import layout
from pipeline.errors import NotFound, VersionConflict
from pipeline.formats import channel
from pipeline.publish.channels import promote
from pipeline.storage import open_store


@pytest.fixture
def published(published, tmp_path):
    """A copy of the session's repository: these tests move its channels."""
    shutil.copytree(published, tmp_path / "repo")
    return tmp_path / "repo"


def test_promote_points_the_channel_and_moves_it(published):
    store = open_store(str(published))
    assert promote(store, PRODUCT, "1.3.0", "qa").version == "1.3.0"
    assert channel.load(store, PRODUCT, "qa").version == "1.3.0"
    promote(store, PRODUCT, "1.1.0", "qa")
    assert channel.load(store, PRODUCT, "qa").version == "1.1.0"


def test_a_version_without_manifest_is_not_promoted(published):
    store = open_store(str(published))
    with pytest.raises(NotFound, match="chunk it before you promote"):
        promote(store, PRODUCT, "9.9.9", "qa-missing")
    assert not store.has(layout.channel_key(PRODUCT, "qa-missing"))


def test_racing_promotions_one_wins_the_others_are_told(published):
    store = open_store(str(published))
    promote(store, PRODUCT, "1.0.0", "race")
    racers = VERSIONS[1:]  # each moves the pointer to other bytes (the same bytes again would not be a move)
    barrier = threading.Barrier(len(racers))
    outcome: dict[str, str] = {}
    real_put = store.put_if_match

    def put_after_everyone_read(key, data, tag):
        barrier.wait()  # every promoter has read the same pointer before anyone writes
        return real_put(key, data, tag)

    store.put_if_match = put_after_everyone_read
    try:
        def run(v: str) -> None:
            try:
                promote(store, PRODUCT, v, "race")
                outcome[v] = "won"
            except VersionConflict:
                outcome[v] = "told"

        run_together(run, [(v,) for v in racers])
    finally:
        del store.put_if_match
    winners = [v for v, o in outcome.items() if o == "won"]
    assert len(outcome) == len(racers) and len(winners) == 1
    assert channel.load(store, PRODUCT, "race").version == winners[0]


def test_every_move_raises_the_serial_and_rollback_goes_back_as_a_new_pointer(published):
    from pipeline.publish.channels import channels, rollback

    store = open_store(str(published))
    first = promote(store, PRODUCT, "1.0.0", "moves")
    second = promote(store, PRODUCT, "1.2.0", "moves")
    back = rollback(store, PRODUCT, "moves")
    assert [p.serial for p in (first, second, back)] == [1, 2, 3]
    assert (back.version, back.history[0].action) == ("1.0.0", "rollback")
    assert rollback(store, PRODUCT, "moves", to="1.3.0").serial == 4
    assert {c.channel: c.version for c in channels(store, PRODUCT)}["moves"] == "1.3.0"
    with pytest.raises(NotFound, match="chunk it before you rollback"):
        rollback(store, PRODUCT, "moves", to="9.9.9")
    promote(store, PRODUCT, "1.1.0", "single")
    with pytest.raises(NotFound, match="has delivered only 1.1.0"):
        rollback(store, PRODUCT, "single")


def test_history_keeps_the_latest_50_moves_newest_first(published):
    store = open_store(str(published))
    for i in range(53):  # three moves more than the pointer keeps
        promote(store, PRODUCT, VERSIONS[i % len(VERSIONS)], "long")
    pointer = channel.load(store, PRODUCT, "long")  # read back and checked against its schema
    assert pointer.serial == 53 and pointer.version == VERSIONS[52 % len(VERSIONS)]
    assert [m.serial for m in pointer.history] == list(range(53, 3, -1))
    assert [m.version for m in pointer.history] == [VERSIONS[(s - 1) % len(VERSIONS)] for s in range(53, 3, -1)]
    assert len(json.loads(store.get(layout.channel_key(PRODUCT, "long")))["history"]) == 50
