"""The one retry policy (storage.retry, on tenacity): which failures are tried again, how
long each wait is, and what is raised when the tries run out. Waits go to the test's
record, never to the clock."""

from __future__ import annotations

import pytest

from pipeline.errors import IntegrityError, NotFound, StoreUnavailable
from pipeline.storage import retry


def failing(*errors: BaseException, then: bytes = b"bytes"):
    """A call that raises ``errors`` in turn, then returns ``then``; ``calls`` counts it."""
    pending = list(errors)

    def call() -> bytes:
        call.calls += 1  # type: ignore[attr-defined]
        if pending:
            raise pending.pop(0)
        return then

    call.calls = 0  # type: ignore[attr-defined]
    return call


def test_a_transient_failure_is_tried_again_after_a_wait_that_doubles():
    slept, retried = [], []
    call = failing(StoreUnavailable("s3://b: HTTP 503"), StoreUnavailable("s3://b: HTTP 503"))
    assert retry.policy(3, 0.1, jitter=False, sleep=slept.append, on_retry=lambda: retried.append(1))(call) == b"bytes"
    assert (call.calls, slept, len(retried)) == (3, [0.1, 0.2], 2)


def test_the_last_failure_is_raised_as_it_was_when_the_tries_run_out():
    errors = [StoreUnavailable(f"s3://b: try {i}") for i in range(4)]
    slept: list[float] = []
    with pytest.raises(StoreUnavailable) as raised:
        retry.policy(3, 0.1, most=0.25, jitter=False, sleep=slept.append)(failing(*errors))
    assert raised.value is errors[-1]
    assert slept == [0.1, 0.2, 0.25]  # doubling, up to the most


@pytest.mark.parametrize("error", [NotFound("s3://b/k: not found"), IntegrityError("chunk ab: bytes do not match")])
def test_what_is_not_transient_is_raised_at_once(error):
    slept: list[float] = []
    call = failing(error)
    with pytest.raises(type(error)) as raised:
        retry.policy(3, 0.1, sleep=slept.append)(call)
    assert (raised.value, call.calls, slept) == (error, 1, [])


def test_the_caller_names_what_else_is_worth_another_try():
    slept: list[float] = []
    call = failing(IntegrityError("chunk ab: bytes do not match"))
    assert retry.policy(1, 0.1, jitter=False, on=(IntegrityError,), sleep=slept.append)(call) == b"bytes"
    assert slept == [0.1]


def test_jitter_draws_each_wait_from_the_upper_half_of_its_range():
    slept: list[float] = []
    with pytest.raises(StoreUnavailable):
        retry.policy(6, 0.2, most=5.0, sleep=slept.append)(failing(*[StoreUnavailable("down")] * 7))
    ranges = [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]
    assert len(slept) == len(ranges)
    assert all(full / 2 <= wait <= full for wait, full in zip(slept, ranges)), slept
