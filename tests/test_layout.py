"""Keys of the repository layout: a bad name is InvalidKey naming it and the rule; a good
one makes the key."""

from __future__ import annotations

import pytest

from pipeline import layout
from pipeline.errors import InvalidKey

CHUNK = "ab" * 32
KEY_ID = "cd" * 16


@pytest.mark.parametrize("make, message", [
    (lambda: layout.manifest_key("Starfall", "1.0.0"),
     "invalid product name 'Starfall': a lowercase letter or digit first, then lowercase letters, digits, "
     "'.', '_', '-' (128 at most)"),
    (lambda: layout.manifest_key("starfall", ".1"),
     "invalid version '.1': a letter or digit first, then letters, digits, '.', '_', '+', '-' (128 at most)"),
    (lambda: layout.chunk_key("AB" * 32), f"invalid chunk id '{'AB' * 32}': expected 64 lowercase hex digits"),
    (lambda: layout.chunk_key(CHUNK, "x"), "invalid content key id 'x': expected 32 lowercase hex digits"),
    (lambda: layout.channel_key("starfall", ".."),
     "invalid channel name '..': use lowercase letters, digits, '.', '_', '-'"),
    (lambda: layout.metadata_key("", 1), "invalid role name ''"),
    (lambda: layout.check_key("a//b"), "invalid store key 'a//b'"),
])
def test_a_bad_name_is_refused_naming_it_and_the_rule(make, message):
    with pytest.raises(InvalidKey) as exc:
        make()
    assert str(exc.value) == message


def test_good_names_make_their_keys():
    assert layout.manifest_key("starfall", "1.0.0+b2") == "products/starfall/versions/1.0.0+b2/manifest.json"
    assert layout.chunk_key(CHUNK, KEY_ID) == f"chunks/ab/{CHUNK}.{KEY_ID}"
    assert layout.channel_key("starfall", "beta") == "products/starfall/channels/beta.json"
    assert layout.metadata_key("root", 3) == "metadata/3.root.json"


def test_a_request_s_names_are_checked_and_versions_not_given_skipped():
    layout.check_names("starfall", None, "", "1.0.0")
    with pytest.raises(InvalidKey) as exc:
        layout.check_names("starfall", None, "1..x/")
    assert str(exc.value).startswith("invalid version '1..x/': ")
