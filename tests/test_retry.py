"""The one retry policy: temporary errors only, bounded in attempts and in time, waits reported."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.errors import PermanentError, TemporaryError
from reconciler.runtime.retry import RetryPolicy, retrying

QUICK = RetryPolicy(attempts=4, max_delay_s=10.0, initial_s=0.001, max_wait_s=0.01)


def failing(errors: list[Exception], result: str = "done") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return calls, call


def test_temporary_errors_are_retried_until_the_call_succeeds() -> None:
    """Two TemporaryErrors, then success: three calls, two reported retries, the result."""
    calls, call = failing([TemporaryError("a"), TemporaryError("b")])
    seen: list[tuple[int, str]] = []
    result = retrying(call, QUICK, on_retry=lambda n, e: seen.append((n, str(e))))
    assert (result, len(calls), seen) == ("done", 3, [(1, "a"), (2, "b")])


def test_permanent_errors_are_not_retried() -> None:
    """A PermanentError is raised from the first call, untouched."""
    calls, call = failing([PermanentError("no")])
    with pytest.raises(PermanentError, match="no"):
        retrying(call, QUICK)
    assert len(calls) == 1


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    """After `attempts` calls the last TemporaryError itself is raised."""
    calls, call = failing([TemporaryError(str(i)) for i in range(10)])
    with pytest.raises(TemporaryError, match=r"^3$"):
        retrying(call, QUICK)
    assert len(calls) == QUICK.attempts


def test_total_time_is_bounded_and_waits_go_through_the_given_sleep() -> None:
    """A policy of 0 s total stops after the first failure; waits use the caller's sleep."""
    calls, call = failing([TemporaryError("x")] * 5)
    with pytest.raises(TemporaryError):
        retrying(call, QUICK.within(0.0), sleep=lambda s: None)
    assert len(calls) == 1
    slept: list[float] = []
    calls, call = failing([TemporaryError("x")])
    assert retrying(call, QUICK, sleep=slept.append) == "done"
    assert len(slept) == 1 and 0 <= slept[0] <= QUICK.max_wait_s
