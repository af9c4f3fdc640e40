"""Signed CDN links: what a CDN honours, and what it refuses (expired, forged, wrong path,
wrong key), with keys rotating under live links."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pipeline.errors import LinkRefused
from pipeline.service.links import LinkSigner, scope_of, verify_nginx, verify_token

NOW = 1_800_000_000
CHUNK = "chunks/ab/" + "ab" * 32


def signer(style: str, **kw) -> LinkSigner:
    return LinkSigner("https://cdn-msk.example/depot", secret="s3cret", keys=(("k2", b"new key"), ("k1", b"old key")),
                      ttl=300, style=style, _clock=lambda: NOW, **kw)


def query(url: str) -> dict:
    return dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))


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
    (lambda uri, q: (uri, q["md5"][:-2] + "AA", q["expires"], "s3cret", NOW), "forged"),
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
    assert token.startswith(f"exp={NOW + 300}~acl=/chunks/*~kid=k2~hmac=")
    keys = {"k2": b"new key", "k1": b"old key"}
    verify_token(token, "/chunks/cd/" + "cd" * 32, keys, now=NOW)  # any chunk: one token for all
    old = LinkSigner("x", keys=(("k1", b"old key"),), _clock=lambda: NOW).token("/chunks/*", NOW + 60)
    verify_token(old, f"/{CHUNK}", keys, now=NOW)  # signed before the rotation: still good
    assert scope_of("products/starfall/versions/1.0.0/manifest.json") == "/products/starfall/*"


@pytest.mark.parametrize("make, path, keys, now, reason", [
    (lambda t: t, f"/{CHUNK}", {"k2": b"new key"}, NOW + 301, "expired"),
    (lambda t: t, "/products/starfall/versions/1/manifest.json", {"k2": b"new key"}, NOW, "wrong path"),
    (lambda t: t, f"/{CHUNK}", {"k1": b"old key"}, NOW, "unknown key"),  # k2 retired
    (lambda t: t, f"/{CHUNK}", {"k2": b"another key"}, NOW, "forged"),
    (lambda t: t.replace("acl=/chunks/*", "acl=/*"), "/products/x/y", {"k2": b"new key"}, NOW, "forged"),
    (lambda t: t.replace(f"exp={NOW + 300}", f"exp={NOW + 9999}"), f"/{CHUNK}", {"k2": b"new key"}, NOW, "forged"),
    (lambda t: "exp=1~acl=/x", f"/{CHUNK}", {"k2": b"new key"}, NOW, "malformed"),
])
def test_a_token_refused(make, path, keys, now, reason):
    token = make(signer("token").token("/chunks/*", NOW + 300))
    with pytest.raises(LinkRefused) as err:
        verify_token(token, path, keys, now=now)
    assert err.value.reason == reason
