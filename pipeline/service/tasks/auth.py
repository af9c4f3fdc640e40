"""Who asks: a JWT bearer token verified here (PyJWT), its ``sub`` the user; and whether
that user may download a product (a ``products`` claim in the token, else the Library
Service).

Keys come from settings: PEM public keys (RSA, EC or Ed25519: any of them may sign) or a
JWKS document (its ``kid`` names the key; read again when a token names a key it lacks, so
a new key is taken without a restart). The algorithm is the key's: a token cannot choose
a weaker one, nor ``none``. ``exp`` and ``sub`` are required; ``aud`` and ``iss`` when the
settings name them.

A token that verified is remembered until its ``exp`` (at most ``VERIFIED_TTL_S``): a
client sends the same token with every report, and checking its signature again each
time would cost more than the rest of the report.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

import jwt
import urllib3
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ...errors import EntitlementUnavailable, Forbidden, InvalidArgument, Unauthorized
from .settings import TaskSettings

log = logging.getLogger(__name__)
LEEWAY_S = 5  # clock skew allowed on exp, nbf and iat
PRODUCTS_CLAIM = "products"  # the products a token's holder may download ("*": all)
VERIFIED_TTL_S = 60.0  # a verified token is remembered this long at most (a key withdrawn counts within it)
VERIFIED_KEPT = 100_000  # tokens remembered; the oldest is forgotten first


@dataclass(frozen=True)
class User:
    id: str  # the token's sub
    claims: dict[str, Any] = field(repr=False)
    token: str = field(repr=False)


def unauthorized(detail: str, error: str | None = "invalid_token") -> Unauthorized:
    """UNAUTHORIZED with the RFC 6750 challenge (no error code when no token was given)."""
    exc = Unauthorized(detail)
    challenge = 'Bearer realm="depot"'
    if error:
        challenge += f', error="{error}", error_description="{detail[:200].replace(chr(34), chr(39))}"'
    exc.headers = {"WWW-Authenticate": challenge}  # type: ignore[attr-defined]
    return exc


def _algorithms(key: object) -> list[str]:
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ["ES256", "ES384", "ES512"]
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return ["EdDSA"]
    raise InvalidArgument(f"{type(key).__name__}: not a public key tokens can be verified with (RSA, EC, Ed25519)")


class Authenticator:
    def __init__(self, settings: TaskSettings, clock: Callable[[], float] = time.time):
        self.settings, self.clock = settings, clock
        self._verified: dict[str, tuple[User, float]] = {}  # token -> (its user, remembered until)
        self._remembering = threading.Lock()
        self._pem = []
        for n, pem in enumerate(settings.jwt_keys):
            try:
                key = load_pem_public_key(pem)
            except ValueError:
                raise InvalidArgument(f"JWT key {n + 1}: not a PEM public key") from None
            self._pem.append((key, _algorithms(key)))
        self._lock = threading.Lock()
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._jwks_stamp: tuple[int, int] | None = None  # the file's (mtime, size) when read
        if settings.jwks_file is not None:
            self._read_jwks()
        if not self._pem and settings.jwks_file is None:
            raise InvalidArgument("download tasks need keys to verify tokens with: --jwt-key PEM or --jwks FILE")

    def _read_jwks(self) -> None:
        """Read the JWKS file, unless it is unchanged since it was read (a token naming an
        unknown key costs a stat, not a parse)."""
        path = self.settings.jwks_file
        assert path is not None
        try:
            info = path.stat()
            if (info.st_mtime_ns, info.st_size) == self._jwks_stamp:
                return
            document = json.loads(path.read_text())
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (OSError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError) as exc:
            raise InvalidArgument(f"{path}: not a JWKS document with a usable key ({exc})") from None
        with self._lock:
            self._jwks = {k.key_id or "": k for k in keys}
            self._jwks_stamp = (info.st_mtime_ns, info.st_size)

    def remembered(self, token: str) -> User | None:
        """The user of a token that verified lately (None: ``verify`` it)."""
        known = self._verified.get(token)
        return known[0] if known is not None and self.clock() < known[1] else None

    def verify(self, token: str) -> User:
        """The user a bearer token names; UNAUTHORIZED unless it verifies."""
        known = self.remembered(token)
        if known is not None:
            return known
        now = self.clock()
        user = self._verify(token)
        with self._remembering:
            if len(self._verified) >= VERIFIED_KEPT:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (user, min(now + VERIFIED_TTL_S, float(user.claims["exp"])))
        return user

    def _verify(self, token: str) -> User:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise unauthorized(f"not a JWT: {exc}") from None
        candidates = self._keys_for(header)
        if not candidates:
            raise unauthorized(f"no key verifies tokens signed with {header.get('alg')!r} "
                               f"(key id {header.get('kid')!r})")
        last: Exception | None = None
        for key, algorithms in candidates:
            try:
                claims = jwt.decode(token, key, algorithms=algorithms, audience=self.settings.jwt_audience,
                                    issuer=self.settings.jwt_issuer, leeway=LEEWAY_S,
                                    options={"require": ["exp", "sub"]})
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.ExpiredSignatureError:
                raise unauthorized("the token has expired") from None
            except jwt.InvalidTokenError as exc:
                raise unauthorized(f"the token is refused: {exc}") from None
            sub = claims.get("sub")
            if not isinstance(sub, str) or not sub or "\x00" in sub or len(sub) > 255:
                raise unauthorized("the token's sub is not a user id")
            return User(sub, claims, token)
        raise unauthorized(f"the token's signature does not verify ({last})")

    def _keys_for(self, header: dict) -> list[tuple[Any, list[str]]]:
        alg = header.get("alg")
        found: list[tuple[Any, list[str]]] = [(key, [alg]) for key, algorithms in self._pem if alg in algorithms]
        if self.settings.jwks_file is not None:
            kid = header.get("kid") or ""
            if kid not in self._jwks:
                try:
                    self._read_jwks()  # a key added since: taken without a restart
                except InvalidArgument as exc:  # a file being rewritten: the keys read last stay
                    log.warning("%s", exc)
            with self._lock:
                jwk = self._jwks.get(kid) or (next(iter(self._jwks.values())) if not kid and len(self._jwks) == 1
                                              else None)
            if jwk is not None and jwk.algorithm_name == alg:
                found.append((jwk, [alg]))
        return found


class Entitlements:
    """Whether a user may download a product: the token's ``products`` claim when it has
    one; else the Library Service's answer to ``GET {library_url}/users/{user}/products/{product}``
    (the user's own token passed on): 200 yes, 403 or 404 no, anything else
    ENTITLEMENT_UNAVAILABLE. Neither: no."""

    def __init__(self, library_url: str | None, timeout_s: float = 5.0):
        self.library_url = library_url.rstrip("/") if library_url else None
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_s), retries=False)

    def check(self, user: User, product: str) -> None:
        claim = user.claims.get(PRODUCTS_CLAIM)
        if isinstance(claim, list):
            if product in claim or "*" in claim:
                return
            raise Forbidden(f"user {user.id} is not entitled to {product} (the token's {PRODUCTS_CLAIM!r} claim)")
        if self.library_url is None:
            raise Forbidden(f"user {user.id} is not entitled to {product}: the token names no products and no "
                            "Library Service is configured to ask")
        url = f"{self.library_url}/users/{quote(user.id, safe='')}/products/{quote(product, safe='')}"
        try:
            answer = self._http.request("GET", url, headers={"Authorization": f"Bearer {user.token}"})
        except urllib3.exceptions.HTTPError as exc:
            raise EntitlementUnavailable(f"the Library Service at {self.library_url} did not answer: {exc}") from None
        if answer.status == 200:
            return
        if answer.status in (403, 404):
            raise Forbidden(f"user {user.id} is not entitled to {product} (the Library Service)")
        raise EntitlementUnavailable(f"the Library Service at {self.library_url} answered {answer.status}")
