"""Who asks: bearer tokens verified in the service (expired, forged, unsigned, of another
key, without a sub: all UNAUTHORIZED with the RFC 6750 challenge), keys from a JWKS file
(a key added later is taken without a restart), and entitlement from the token's
``products`` claim or a Library Service over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Client, Signer, code, config, database_in, service
from pipeline.service.app import create_app
from pipeline.service.tasks.settings import TaskSettings


def refused(url: str, token: str | None, path: str = "/tasks") -> tuple[int, str, str]:
    status, body, headers = Client(url, token).call("GET", path)
    return status, code(body), headers.get("WWW-Authenticate", "")


def test_no_token_is_unauthorized_with_a_bearer_challenge(tasks_url):
    assert refused(tasks_url, None) == (401, "UNAUTHORIZED", 'Bearer realm="depot"')
    status, body, _ = Client(tasks_url, None).create()
    assert (status, code(body)) == (401, "UNAUTHORIZED")


def test_expired_forged_and_foreign_tokens_are_refused(tasks_url, signer):
    good = signer.token("alice", [PRODUCT])
    assert Client(tasks_url, good).call("GET", "/tasks")[0] == 200
    expired = signer.token("alice", [PRODUCT], ttl=-60)
    header, claims, signature = good.split(".")
    raised = json.loads(base64.urlsafe_b64decode(claims + "=="))
    raised["sub"] = "mallory"
    forged = ".".join([header, base64.urlsafe_b64encode(json.dumps(raised).encode()).rstrip(b"=").decode(), signature])
    other_key = Signer().token("alice", [PRODUCT])
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, None, algorithm="none")
    hs256 = confused(signer.pem, {"sub": "alice", "exp": int(time.time()) + 600})
    no_sub = jwt.encode({"exp": int(time.time()) + 600}, signer.key, algorithm="EdDSA")
    for name, token, said in [("expired", expired, "expired"), ("forged", forged, "does not verify"),
                              ("another key", other_key, "does not verify"), ("unsigned", unsigned, "no key"),
                              ("HS256 with the public key as secret", hs256, "no key"),
                              ("without sub", no_sub, "sub"), ("not a JWT", "not-a-token", "not a JWT")]:
        status, got, challenge = refused(tasks_url, token)
        assert (status, got) == (401, "UNAUTHORIZED"), name
        assert challenge.startswith('Bearer realm="depot", error="invalid_token", error_description="'), name
        assert said in challenge, (name, challenge)


def confused(public_pem: bytes, claims: dict) -> str:
    """A token signed HS256 with the public key as the HMAC secret (the algorithm confusion attack)."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    text = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    mac = hmac.new(public_pem, text.encode(), hashlib.sha256).digest()
    return f"{text}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_audience_and_issuer_are_required_when_set(published, signer, tmp_path):
    with service(published, signer, database_in(tmp_path), jwt_audience="depot", jwt_issuer="auth") as url:
        assert refused(url, signer.token("alice", [PRODUCT]))[:2] == (401, "UNAUTHORIZED")
        assert refused(url, signer.token("alice", [PRODUCT], aud="other", iss="auth"))[:2] == (401, "UNAUTHORIZED")
        assert Client(url, signer.token("alice", [PRODUCT], aud="depot", iss="auth")).call("GET", "/tasks")[0] == 200


def test_keys_from_a_jwks_file_and_a_key_added_later(published, tmp_path):
    first = ec.generate_private_key(ec.SECP256R1())
    later = ec.generate_private_key(ec.SECP256R1())

    def jwk(key, kid):
        return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256"}

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk(first, "k1")]}))

    def token(key, kid):
        return jwt.encode({"sub": "bob", "exp": int(time.time()) + 600, "products": [PRODUCT]}, key,
                          algorithm="ES256", headers={"kid": kid})

    app = create_app(config(published, TaskSettings(database_in(tmp_path), jwks_file=jwks)))
    with uvicorn_server(app) as url:
        assert Client(url, token(first, "k1")).call("GET", "/tasks")[0] == 200
        assert refused(url, token(later, "k2"))[:2] == (401, "UNAUTHORIZED")
        assert refused(url, token(later, "k1"))[:2] == (401, "UNAUTHORIZED")  # the wrong key under a known id
        jwks.write_text(json.dumps({"keys": [jwk(first, "k1"), jwk(later, "k2")]}))
        assert Client(url, token(later, "k2")).call("GET", "/tasks")[0] == 200


def test_a_product_the_token_does_not_name_is_forbidden(tasks_url, signer):
    status, body, _ = Client(tasks_url, signer.token("carol", ["another-game"])).create()
    assert (status, code(body)) == (403, "FORBIDDEN")
    status, body, _ = Client(tasks_url, signer.token("carol")).create()  # no claim, no Library Service
    assert (status, code(body)) == (403, "FORBIDDEN")
    assert Client(tasks_url, signer.token("carol", ["*"])).create()[0] == 202


def test_a_bad_name_is_refused_before_the_entitlement_is_asked(tasks_url, signer):
    """INVALID_NAME, not FORBIDDEN: a product name the layout refuses is no product to be
    entitled to, whatever route names it."""
    player = Client(tasks_url, signer.token("dave", ["another-game"]))
    for status, body, _ in (
            player.create(product="Bad Name"),
            player.call("POST", "/updates/initiate", {"data": {"type": "updateInitiateRequest", "attributes": {
                "productId": PRODUCT, "targetVersionId": "../1.2.0", "targetPath": "/g"}}}),
            player.call("POST", "/integrity/verify", {"data": {"type": "integrityVerificationRequest", "attributes": {
                "productId": PRODUCT, "installedVersionId": "1.2.0/..", "targetPath": "/g"}}})):
        assert (status, code(body)) == (400, "INVALID_NAME"), body


class Library(BaseHTTPRequestHandler):
    """A Library Service: dave owns the product, erin does not; frank's lookup fails."""

    seen: list[tuple[str, str]] = []

    def do_GET(self):
        Library.seen.append((self.path, self.headers.get("Authorization", "")))
        status = {"dave": 200, "erin": 404, "frank": 500}[self.path.split("/")[5]]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_entitlement_from_the_library_service(published, signer, tmp_path):
    library = ThreadingHTTPServer(("127.0.0.1", 0), Library)
    threading.Thread(target=library.serve_forever, daemon=True).start()
    try:
        where = f"http://127.0.0.1:{library.server_address[1]}/api/v1/library"
        with service(published, signer, database_in(tmp_path), library_url=where) as url:
            dave = signer.token("dave")
            assert Client(url, dave).create()[0] == 202
            assert Library.seen[-1] == (f"/api/v1/library/users/dave/products/{PRODUCT}", f"Bearer {dave}")
            status, body, _ = Client(url, signer.token("erin")).create()
            assert (status, code(body)) == (403, "FORBIDDEN")
            status, body, _ = Client(url, signer.token("frank")).create()
            assert (status, code(body)) == (503, "ENTITLEMENT_UNAVAILABLE")
            seen = len(Library.seen)
            assert Client(url, signer.token("erin", [PRODUCT])).create()[0] == 202  # the claim decides
            assert len(Library.seen) == seen
    finally:
        library.shutdown()
