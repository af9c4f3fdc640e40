"""A token that verified is remembered (a client sends the same one with every report):
until its exp, a minute at most; one that did not verify is checked again each time."""

from __future__ import annotations

import time

import jwt
import pytest

from depot_testing.tasks import Clock
from pipeline.errors import Unauthorized
from pipeline.service.tasks.auth import VERIFIED_TTL_S, Authenticator
from pipeline.service.tasks.settings import TaskSettings


def test_a_verified_token_is_remembered_a_minute_at_most(signer):
    clock = Clock(time.time())
    auth = Authenticator(TaskSettings(jwt_keys=(signer.pem,)), clock)
    token = signer.token("remembered", ttl=600)
    first = auth.verify(token)
    assert auth.verify(token) is first  # not verified again
    clock.now += VERIFIED_TTL_S - 0.01
    assert auth.verify(token) is first
    clock.now += 0.01
    again = auth.verify(token)
    assert again is not first and (again.id, again.claims) == (first.id, first.claims)
    assert auth.verify(token) is again


def test_a_token_is_remembered_until_its_exp_only(signer):
    clock = Clock(time.time())
    auth = Authenticator(TaskSettings(jwt_keys=(signer.pem,)), clock)
    token = signer.token("short", ttl=30)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    first = auth.verify(token)
    clock.now = exp - 0.01
    assert auth.verify(token) is first
    clock.now = exp
    assert auth.verify(token) is not first  # past its exp on the clock it is remembered by: verified again


def test_a_token_that_does_not_verify_is_refused_every_time(signer):
    auth = Authenticator(TaskSettings(jwt_keys=(signer.pem,)))
    token = signer.token("forged", ttl=600)
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"  # never the signature itself
    for _ in range(2):
        with pytest.raises(Unauthorized, match="signature does not verify"):
            auth.verify(forged)
    assert auth.verify(token).id == "forged"
