"""The one retry policy: what is retried, how often, how long apart, for how long in all.

Runtime layer, used by every caller that tries something again: the executor's backend calls,
the first list call of an observation, the wait for a started machine's API socket and the
wait for a dependency to report healthy. Only TemporaryError is retried (errors.py: a
PermanentError will not pass by trying again); waits grow exponentially with full jitter, and
both the number of attempts and the total time are bounded. The last error is re-raised as is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from reconciler.errors import TemporaryError

T = TypeVar("T")

OnRetry = Callable[[int, BaseException | None], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of one retried call: attempts, total seconds, first and largest wait."""

    attempts: int = 6
    max_delay_s: float = 30.0
    initial_s: float = 0.2
    max_wait_s: float = 5.0

    def within(self, seconds: float, *, attempts: int | None = None) -> RetryPolicy:
        """The same policy bounded by another total time (and attempt count)."""
        return replace(
            self, max_delay_s=seconds, attempts=self.attempts if attempts is None else attempts
        )


DEFAULT = RetryPolicy()


def retrying(
    call: Callable[[], T],
    policy: RetryPolicy = DEFAULT,
    *,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """call(), again after each TemporaryError while the policy allows; then its last error.

    `sleep` lets a caller wait on an interrupt event instead of sleeping blindly.
    """
    import tenacity  # lazy: a no-op pass never retries anything

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            error = state.outcome.exception() if state.outcome else None
            on_retry(state.attempt_number, error)

    def pause(seconds: float) -> None:
        sleep(seconds)

    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TemporaryError),
        stop=(
            tenacity.stop_after_attempt(policy.attempts)
            | tenacity.stop_after_delay(policy.max_delay_s)
        ),
        wait=tenacity.wait_random_exponential(multiplier=policy.initial_s, max=policy.max_wait_s),
        reraise=True,
        before_sleep=before_sleep,
        sleep=pause,
    )
    return retryer(call)
