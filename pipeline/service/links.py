"""Short-lived signed CDN links, in the two forms CDN servers check, and their checking.

- nginx ``secure_link``: ``?md5=M&expires=E`` where M is the base64url MD5 (no padding) of
  ``E + uri + " " + secret``, matching ``secure_link_md5 "$secure_link_expires$uri $secret"``.
  One link per object.
- A prefix-scoped HMAC-SHA256 token in the EdgeAuth shape:
  ``exp=E~acl=/depot/chunks/*~kid=K~hmac=H``, H the hex HMAC-SHA256 of everything before
  ``~hmac=`` under the key K. One token covers every object under its prefix, and the key
  id lets secrets rotate: links signed with the previous key stay good until they expire.

Both are signed over the path the CDN checks: nginx's ``$uri`` is the request's path
percent-decoded, so a key holding ``+``, ``=``, ``%`` or a space is percent-encoded in the
URL and signed decoded; and the path includes the CDN base's own path (``public_url``'s
``/depot`` in ``https://cdn.example/depot``).

Scope: chunks and patches are content-addressed and shared across versions and products,
so one token covers ``/chunks/*`` or ``/patches/*`` (a chunk's id is revealed only by a
signed manifest); documents are scoped to their product (``/products/<P>/*``); TUF
metadata is public and needs no link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote, unquote, urlsplit

from ..errors import LinkRefused


def scope_of(key: str) -> str:
    """The prefix a token for ``key`` covers (see the module docstring)."""
    parts = key.split("/")
    if parts[0] in ("chunks", "patches"):
        return f"/{parts[0]}/*"
    if parts[0] == "products" and len(parts) > 2:
        return f"/products/{parts[1]}/*"
    return "/" + key


def _md5(expires: int, uri: str, secret: str) -> str:
    digest = hashlib.md5(f"{expires}{uri} {secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LinkSigner:
    base_url: str  # where players fetch from: the CDN in front of an origin
    secret: str = ""  # nginx secure_link
    keys: tuple[tuple[str, bytes], ...] = ()  # (key id, HMAC key), the first signs
    ttl: int = 300  # seconds a link is good for
    style: str = "nginx"  # or "token"
    _clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def expires(self) -> int:
        return int(self._clock()) + self.ttl

    def link(self, key: str) -> tuple[str, int]:
        """A signed URL for the object ``key``, and when it expires: percent-encoded in the
        URL, signed over the decoded path the CDN checks."""
        url = f"{self.base_url.rstrip('/')}/{quote(key)}"
        expires = self.expires()
        if self.style == "token":
            return f"{url}?token={self.token(self._prefix() + scope_of(key), expires)}", expires
        return f"{url}?md5={_md5(expires, self._prefix() + '/' + key, self.secret)}&expires={expires}", expires

    def token(self, acl: str, expires: int) -> str:
        kid, key = self.keys[0]
        text = f"exp={expires}~acl={acl}~kid={kid}"
        return f"{text}~hmac={_hmac(key, text)}"

    def _prefix(self) -> str:
        """The CDN base's path as the CDN sees it (decoded, no trailing slash): what comes
        before every object's key."""
        return unquote(urlsplit(self.base_url).path).rstrip("/")


def verify_nginx(path: str, md5: str, expires: str, secret: str, now: float | None = None) -> None:
    """What nginx's secure_link does: raise LinkRefused unless the link is good for the
    request's ``path`` (as sent, percent-encoded), checked decoded, as nginx's ``$uri``."""
    uri = unquote(path)
    try:
        deadline = int(expires)
    except (TypeError, ValueError):
        raise LinkRefused("malformed", f"{uri}: expires {expires!r} is not a time") from None
    if not hmac.compare_digest(_md5(deadline, uri, secret), md5 or ""):
        raise LinkRefused("forged", f"{uri}: the signature does not match")
    if deadline < (time.time() if now is None else now):
        raise LinkRefused("expired", f"{uri}: expired at {deadline}")


def verify_token(token: str, path: str, keys: dict[str, bytes], now: float | None = None) -> None:
    """Raise LinkRefused unless ``token`` is good for the request's ``path`` (as sent,
    percent-encoded; compared decoded): a known key id, the HMAC under that key, not
    expired, and the path under its prefix."""
    path = unquote(path)
    text, sep, mac = (token or "").rpartition("~hmac=")
    fields = dict(p.split("=", 1) for p in text.split("~") if "=" in p) if sep else {}
    if not {"exp", "acl", "kid"} <= set(fields):
        raise LinkRefused("malformed", f"{path}: not a token (exp=...~acl=...~kid=...~hmac=...)")
    key = keys.get(fields["kid"])
    if key is None:
        raise LinkRefused("unknown key", f"{path}: key {fields['kid']!r} is not known (retired or never issued)")
    if not hmac.compare_digest(_hmac(key, text), mac):
        raise LinkRefused("forged", f"{path}: the signature does not match")
    acl = fields["acl"]
    if any(part in (".", "..") for part in path.split("/")):
        raise LinkRefused("wrong path", f"{path}: '.' or '..' in the path")
    if not (path == acl or acl.endswith("*") and path.startswith(acl[:-1])):
        raise LinkRefused("wrong path", f"{path}: the token covers {acl} only")
    try:
        deadline = int(fields["exp"])
    except ValueError:
        raise LinkRefused("malformed", f"{path}: exp {fields['exp']!r} is not a time") from None
    if deadline < (time.time() if now is None else now):
        raise LinkRefused("expired", f"{path}: expired at {deadline}")
