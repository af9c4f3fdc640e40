"""Locations: URLs checked as they are typed, settings carried with them, and a locations
file naming them."""

from __future__ import annotations

import pickle

import pytest

from pipeline.errors import InvalidLocation
from pipeline.storage import Location, Locations


@pytest.mark.parametrize("url, why", [
    ("s4://bucket/x", "unknown scheme 's4://'"),
    ("htps://cdn.example/depot", "unknown scheme 'htps://'"),
    ("memry://scratch", "unknown scheme 'memry://'"),
    ("s3:/bucket/x", "did you mean s3://"),
    ("https:cdn.example", "did you mean https://"),
    ("s3://", "no bucket after s3://"),
    ("https:///depot", "no host after https://"),
    ("", "empty location"),
])
def test_mistyped_urls_are_refused_naming_the_input(url, why):
    with pytest.raises(InvalidLocation) as err:
        Location(url)
    assert why in str(err.value) and err.value.exit_code == 2
    if url:
        assert url in str(err.value)


@pytest.mark.parametrize("url, normal", [
    ("file:///srv/depot/", "/srv/depot"),
    ("S3://bucket/prefix/", "s3://bucket/prefix"),
    ("s3a://bucket", "s3://bucket"),
    ("./depot-repo/", "./depot-repo"),
    ("https://cdn.example/depot/", "https://cdn.example/depot"),
    ("C:/games", "C:/games"),
])
def test_urls_are_normalised(url, normal):
    assert Location(url).url == normal


def test_settings_travel_with_the_location():
    loc = Location("s3://b/p", endpoint="http://127.0.0.1:9000", region="ru-msk", profile="msk", timeout=3)
    opts = loc.storage_options()
    assert opts["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9000", "region_name": "ru-msk"}
    assert opts["profile"] == "msk"
    assert opts["config_kwargs"]["connect_timeout"] == 3 and opts["config_kwargs"]["read_timeout"] == 3
    child = loc.child("chunks/ab/x")
    assert child.url == "s3://b/p/chunks/ab/x" and child.endpoint == loc.endpoint and child.profile == "msk"
    assert pickle.loads(pickle.dumps(loc)) == loc  # what Dask ships to workers
    assert Location("/srv/depot").storage_options() == {}


def write(path, text: str):
    path.write_text(text)
    return str(path)


def test_a_locations_file_names_locations_and_covers_urls_below_them(tmp_path):
    f = write(tmp_path / "locations.toml", """
[msk]
url = "s3://depot-msk/main"
endpoint = "http://s3.msk.internal"
region = "ru-msk"
timeout = 5

[msk-beta]
url = "s3://depot-msk/main/beta"
endpoint = "http://s3-beta.msk.internal"

[cdn]
url = "https://cdn.example/depot"
""")
    locs = Locations.load(f, s3_endpoint="http://default.internal")
    assert locs.resolve("msk") == Location("s3://depot-msk/main", "http://s3.msk.internal", "ru-msk", None, 5)
    below = locs.resolve("s3://depot-msk/main/chunks")
    assert (below.url, below.endpoint, below.region, below.timeout) == ("s3://depot-msk/main/chunks",
                                                                        "http://s3.msk.internal", "ru-msk", 5)
    assert locs.resolve("s3://depot-msk/main/beta/x").endpoint == "http://s3-beta.msk.internal"  # the longest
    assert locs.resolve("s3://depot-msk/mainline").endpoint == "http://default.internal"  # not under "main"
    assert locs.resolve("s3://other/x").endpoint == "http://default.internal"
    assert locs.resolve("/srv/depot").endpoint is None
    assert locs.resolve("cdn").is_http


@pytest.mark.parametrize("text, why", [
    ("[msk]\nurl = 's3://b'\nendpont = 'x'\n", "unknown keys ['endpont']"),
    ("[msk]\nendpoint = 'x'\n", "has no url"),
    ("[msk]\nurl = 's4://b'\n", "unknown scheme"),
    ("[msk]\nurl = 's3://b'\ntimeout = 'soon'\n", "[msk]"),
    ("[msk\nurl = 's3://b'\n", "not a valid locations file"),
    ("url = 's3://b'\n", "[url] is not a location table"),
])
def test_a_bad_locations_file_is_refused_naming_it(tmp_path, text, why):
    f = write(tmp_path / "locations.toml", text)
    with pytest.raises(InvalidLocation) as err:
        Locations.load(f)
    assert why in str(err.value) and f in str(err.value)


def test_a_missing_locations_file_is_refused(tmp_path):
    with pytest.raises(InvalidLocation, match="cannot read the locations file"):
        Locations.load(str(tmp_path / "none.toml"))


def test_a_locations_file_that_is_not_utf8_is_refused_naming_it(tmp_path):
    f = tmp_path / "locations.toml"
    f.write_bytes("[msk]\nurl = 's3://b\u00e9'\n".encode("latin-1"))
    with pytest.raises(InvalidLocation) as err:
        Locations.load(str(f))
    assert str(err.value) == f"{f}: not a valid locations file (not UTF-8: byte 0xe9 on line 2)"
    assert err.value.exit_code == 2


@pytest.mark.parametrize("text, why", [
    ("[msk]\nurl = 's3://b'\nendpoint = 5\n", "endpoint must be a non-empty string, got 5"),
    ("[msk]\nurl = 's3://b'\nregion = ['a']\n", "region must be a non-empty string"),
    ("[msk]\nurl = 's3://b'\nendpoint = 'htps://x'\n", "endpoint 'htps://x' is not an http:// or https:// URL"),
    ("[msk]\nurl = 's3://b'\ntimeout = true\n", "timeout must be a positive number of seconds, got True"),
    ("[msk]\nurl = 's3://b'\ntimeout = '10'\n", "timeout must be a positive number of seconds, got '10'"),
    ("[msk]\nurl = 5\n", "url must be a string (a path or a URL), got 5"),
    ("[msk]\nurl = ['s3://b']\n", "url must be a string (a path or a URL), got ['s3://b']"),
])
def test_settings_of_the_wrong_type_are_refused_naming_the_file(tmp_path, text, why):
    f = write(tmp_path / "locations.toml", text)
    with pytest.raises(InvalidLocation) as err:
        Locations.load(f)
    assert why in str(err.value) and f"{f}: [msk]" in str(err.value)


def test_a_mistyped_name_is_not_taken_for_a_new_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locs = Locations.load(write(tmp_path / "locations.toml", "[main]\nurl = 's3://b/main'\n"))
    with pytest.raises(InvalidLocation, match=r"'mian' is not a location in the locations file \(main\).*\./mian"):
        locs.resolve("mian")
    assert locs.resolve("./mian").url == str(tmp_path / "mian")  # said plainly, a directory is fine
    (tmp_path / "existing").mkdir()
    assert locs.resolve("existing").url == str(tmp_path / "existing")
