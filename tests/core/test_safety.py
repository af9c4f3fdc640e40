"""check_columns, the check of a manifest's columns, refuses exactly what check_entries
(ingest's check) refuses, with the same message, and passes what it passes: on paths
made of the parts that unsafe entries are made of, and on a tree of 100,000 files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.safety import check_columns, check_entries
from pipeline.errors import UnsafeEntry

TYPES = {"d": "dir", "l": "symlink", "f": "file", "p": "file"}


class Entry:
    def __init__(self, path: str, type: str, target: str = ""):
        self.path, self.type, self.target = path, type, target


def verdict(check, *args) -> str:
    try:
        check(*args)
    except UnsafeEntry as exc:
        return str(exc)
    return "safe"


def both(paths: list[str], types: str, targets: list[str]) -> tuple[str, str]:
    links = iter(targets)
    entries = [Entry(p, TYPES[t], next(links) if t == "l" else "") for p, t in zip(paths, types)]
    return verdict(check_columns, paths, types, targets, "m.json"), verdict(check_entries, entries, "m.json")


PARTS = ["a", "b", "C:", "c:x", ".", "..", "", ".depot", ".DEPOT", ".Depot.", ".de\u200cpot", "x\\y", "x\ny",
         "t\x7f", "\ud800", "\u200b", "é"]
path = st.lists(st.sampled_from(PARTS), min_size=1, max_size=4).map("/".join)
target = st.lists(st.sampled_from(["a", "..", ".", "b", "/etc", ""]), min_size=1, max_size=3).map("/".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(path, st.sampled_from("fpdl"), target), max_size=8))
def test_the_columns_are_refused_as_the_entries_are(entries):
    entries = sorted({p: (p, t, x) for p, t, x in entries}.values())  # a manifest's: unique, in order
    paths = [p for p, _, _ in entries]
    types = "".join(t for _, t, _ in entries)
    targets = [x for _, t, x in entries if t == "l"]
    columns, ingest = both(paths, types, targets)
    assert columns == ingest


@pytest.mark.parametrize("paths, types, targets, says", [
    (["a/b", "a/b/c"], "pf", [], "'a/b/c' is inside 'a/b', which is a file"),
    (["a", "a/b/c"], "lf", ["x"], "'a/b/c' is inside 'a', which is a symlink"),
    (["a", "b"], "ll", ["b/..", "../x"], "link 'a' -> 'b/..' points outside the build"),
    (["a/C:/b"], "f", [], "safe"),  # a drive-like part below the top is a name like any other
    (["a/\u200b"], "f", [], "safe"),
    (["b", "a"], "ff", [], "safe"),  # not in order: the entries' own check decides
    (["a", "a"], "ff", [], "m.json: duplicate entry 'a'"),
    ([".depot"], "d", [], "m.json: unsafe entry '.depot': the name is kept for depot's own state"),
])
def test_what_the_columns_alone_cannot_clear_is_named_as_ingest_names_it(paths, types, targets, says):
    columns, ingest = both(paths, types, targets)
    assert columns == ingest
    assert columns == says if says == "safe" else says in columns


def test_a_hundred_thousand_files_pass_and_one_below_a_file_is_named():
    paths = sorted(f"Content/d{i // 50:04d}/f{i:06d}.txt" for i in range(100_000))
    check_columns(paths, "p" * len(paths), [], "m.json")
    bad = sorted(paths + [paths[70_000] + "/x"])
    with pytest.raises(UnsafeEntry, match=f"^m.json: '{bad[70_001]}' is inside '{paths[70_000]}', which is a file$"):
        check_columns(bad, "p" * len(bad), [], "m.json")
