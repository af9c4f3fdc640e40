"""Canonical JSON written a piece at a time is canonical JSON, byte for byte."""

from __future__ import annotations

import random

from pipeline.formats import canonical


def test_a_document_written_a_piece_at_a_time_is_its_canonical_bytes():
    rnd = random.Random(4)
    names = ["a.txt", "é/ü", 'q"uote', "back\\slash", "tab\there", "\u2028line", "z" * 40]
    doc = {
        "format": "depot.test/1", "n": 3, "f": 1.5, "t": True, "none": None, "tuple": (1, "x"),
        "nested": {"b": [1, 2], "a": {"z": "end", "y": []}, "": "empty key"},
        "paths": [rnd.choice(names) + str(i) for i in range(50_000)],  # several pieces
        "sizes": [rnd.randrange(1 << 40) for _ in range(40_000)],
        "digests": "".join(rnd.choice("0123456789abcdef\\\"é") for _ in range(100_000)),
        "rows": [{"k": i, "v": [i, str(i)]} for i in range(20_000)],
        "ints": {"2": 1, "10": 2},
        "small": ["x"] * 3,
    }
    assert bytes(canonical.buffer(doc)) == canonical.canonical(doc)
    assert bytes(canonical.buffer({1: "a", 2: "b"})) == canonical.canonical({1: "a", 2: "b"})  # non-str keys
