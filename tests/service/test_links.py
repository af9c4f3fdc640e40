"""Signed CDN links: what a CDN honours, and what it refuses (expired, forged, wrong path,
wrong key), with keys rotating under live links."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.parse
import urllib.request

import pytest

from pipeline import layout
from pipeline.errors import LinkRefused
from pipeline.service.links import LinkSigner, scope_of, verify_nginx, verify_token

NOW = 1_800_000_000
CHUNK = "chunks/ab/" + "ab" * 32


def signer(style: str, **kw) -> LinkSigner:
    return LinkSigner("https://cdn-msk.example/depot", secret="s3cret", keys=(("k2", b"new key"), ("k1", b"old key")),
                      ttl=300, style=style, _clock=lambda: NOW, **kw)


def query(url: str) -> dict:
    return dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))


def tampered(signature: str) -> str:
    """``signature`` with its first character changed: never the signature itself (new
    last characters can be the ones it had, one time in 256 for an MD5 in base64)."""
    return ("B" if signature[0] == "A" else "A") + signature[1:]


def test_an_nginx_link_is_what_secure_link_computes():
    url, expires = signer("nginx").link(CHUNK)
    assert url.startswith(f"https://cdn-msk.example/depot/{CHUNK}?") and expires == NOW + 300
    q = query(url)
    # nginx: secure_link_md5 "$secure_link_expires$uri $secret", base64url without padding
    raw = hashlib.md5(f"{NOW + 300}/depot/{CHUNK} s3cret".encode()).digest()
    assert q == {"md5": base64.urlsafe_b64encode(raw).decode().rstrip("="), "expires": str(NOW + 300)}
    verify_nginx(f"/depot/{CHUNK}", q["md5"], q["expires"], "s3cret", now=NOW)


@pytest.mark.parametrize("attack, reason", [
    (lambda uri, q: (uri, q["md5"], q["expires"], "s3cret", NOW + 301), "expired"),
    (lambda uri, q: (uri, tampered(q["md5"]), q["expires"], "s3cret", NOW), "forged"),
    (lambda uri, q: (uri, q["md5"], str(NOW + 9999), "s3cret", NOW), "forged"),  # a later expiry, same signature
    (lambda uri, q: (uri.replace("ab" * 32, "cd" * 32), q["md5"], q["expires"], "s3cret", NOW), "forged"),
    (lambda uri, q: (uri, q["md5"], q["expires"], "other secret", NOW), "forged"),
    (lambda uri, q: (uri, q["md5"], "soon", "s3cret", NOW), "malformed"),
])
def test_an_nginx_link_refused(attack, reason):
    url, _ = signer("nginx").link(CHUNK)
    with pytest.raises(LinkRefused) as err:
        uri, md5, expires, secret, now = attack(f"/depot/{CHUNK}", query(url))
        verify_nginx(uri, md5, expires, secret, now=now)
    assert err.value.reason == reason and err.value.code == "CDN_LINK_REFUSED"


def test_a_token_covers_its_prefix_and_survives_a_key_rotation():
    url, _ = signer("token").link(CHUNK)
    token = query(url)["token"]
    assert token.startswith(f"exp={NOW + 300}~acl=/depot/chunks/*~kid=k2~hmac=")  # the path the CDN sees
    keys = {"k2": b"new key", "k1": b"old key"}
    verify_token(token, "/depot/chunks/cd/" + "cd" * 32, keys, now=NOW)  # any chunk: one token for all
    old = LinkSigner("x", keys=(("k1", b"old key"),), _clock=lambda: NOW).token("/depot/chunks/*", NOW + 60)
    verify_token(old, f"/depot/{CHUNK}", keys, now=NOW)  # signed before the rotation: still good
    assert scope_of("products/starfall/versions/1.0.0/manifest.json") == "/products/starfall/*"


@pytest.mark.parametrize("make, path, keys, now, reason", [
    (lambda t: t, f"/depot/{CHUNK}", {"k2": b"new key"}, NOW + 301, "expired"),
    (lambda t: t, "/depot/products/starfall/versions/1/manifest.json", {"k2": b"new key"}, NOW, "wrong path"),
    (lambda t: t, f"/{CHUNK}", {"k2": b"new key"}, NOW, "wrong path"),  # not under the CDN's /depot
    (lambda t: t, "/depot/chunks/../products/x/y", {"k2": b"new key"}, NOW, "wrong path"),
    (lambda t: t, "/depot/chunks/%2E%2E/products/x/y", {"k2": b"new key"}, NOW, "wrong path"),
    (lambda t: t, f"/depot/{CHUNK}", {"k1": b"old key"}, NOW, "unknown key"),  # k2 retired
    (lambda t: t, f"/depot/{CHUNK}", {"k2": b"another key"}, NOW, "forged"),
    (lambda t: t.replace("acl=/depot/chunks/*", "acl=/*"), "/products/x/y", {"k2": b"new key"}, NOW, "forged"),
    (lambda t: t.replace(f"exp={NOW + 300}", f"exp={NOW + 9999}"), f"/depot/{CHUNK}", {"k2": b"new key"}, NOW,
     "forged"),
    (lambda t: "exp=1~acl=/x", f"/depot/{CHUNK}", {"k2": b"new key"}, NOW, "malformed"),
])
def test_a_token_refused(make, path, keys, now, reason):
    token = make(signer("token").token("/depot/chunks/*", NOW + 300))
    with pytest.raises(LinkRefused) as err:
        verify_token(token, path, keys, now=now)
    assert err.value.reason == reason


# Keys whose names need percent-encoding in a URL: "+" in a version (valid: 1.0.0+hotfix1),
# "=" in a stats partition, and on the origin beside them a file whose path holds "%" and
# spaces (the layout has no such key; a CDN may still be asked for one).
ODD_KEYS = [
    layout.manifest_key("starfall", "1.0.0+hotfix1"),
    layout.plan_key("starfall", "1.0.0", "1.0.0+hotfix1"),
    "stats/product=starfall/versions.parquet",
    "extra/100% done/a b+c=d.bin",
    CHUNK,
]


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """A real nginx with secure_link serving an origin directory that holds ODD_KEYS."""
    from depot_testing.servers import nginx

    base = tmp_path_factory.mktemp("edge")
    for i, key in enumerate(ODD_KEYS):
        (base / "origin" / key).parent.mkdir(parents=True, exist_ok=True)
        (base / "origin" / key).write_bytes(f"object {i}: {key}".encode())
    with nginx(base / "origin", "s3cret", base / "nginx") as cdn:
        yield cdn


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.mark.parametrize("key", ODD_KEYS)
def test_nginx_honours_a_link_to_any_key_and_refuses_it_tampered(edge, key):
    """The signature covers what nginx checks (the decoded $uri, the CDN's /depot included);
    the same link with its signature, its expiry or its path changed is refused."""
    s = LinkSigner(edge, secret="s3cret", ttl=300)
    url, _ = s.link(key)
    assert fetch(url) == (200, f"object {ODD_KEYS.index(key)}: {key}".encode())
    path, q = urllib.parse.urlsplit(url).path, query(url)
    verify_nginx(path, q["md5"], q["expires"], "s3cret")  # the verifier agrees with nginx
    forged = url.replace(f"md5={q['md5']}", f"md5={tampered(q['md5'])}")
    later = url.replace(f"expires={q['expires']}", f"expires={int(q['expires']) + 60}")
    other = ODD_KEYS[(ODD_KEYS.index(key) + 1) % len(ODD_KEYS)]
    moved = url.replace(path, urllib.parse.urlsplit(s.link(other)[0]).path)
    for bad in (forged, later, moved):
        assert fetch(bad)[0] == 403, bad
        with pytest.raises(LinkRefused) as err:
            verify_nginx(urllib.parse.urlsplit(bad).path, query(bad)["md5"], query(bad)["expires"], "s3cret")
        assert err.value.reason == "forged"


def test_a_token_for_an_odd_key_covers_the_path_the_cdn_sees():
    """A token for a document of a version with "+": its acl is the product's prefix under
    the CDN's own path, and the URL's percent-encoded path verifies against it."""
    s = signer("token")
    url, _ = s.link(ODD_KEYS[0])
    assert "/depot/products/starfall/versions/1.0.0%2Bhotfix1/manifest.json?token=" in url
    token = query(url)["token"]
    assert "~acl=/depot/products/starfall/*~" in token
    verify_token(token, urllib.parse.urlsplit(url).path, {"k2": b"new key"}, now=NOW)
