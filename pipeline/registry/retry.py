"""The one retry policy (tenacity): used by the registry client, the engine push and the
cloud token exchange.

  * How often: `attempts` in all and at most `max_delay` seconds per wait, from release.yml's
    `retry:`. The cloud token exchange has no release.yml at hand and uses TOKEN_ATTEMPTS /
    TOKEN_MAX_DELAY (the budget of the cloud SDKs' own retries).
  * What: an error whose `transient` attribute is true - a connection that failed, a
    registry's 408/429/5xx (RegistryAPIError), an engine push that lost the network
    (PushTransientError). Never a refusal (400/401/403/404), a wrong password or a digest
    mismatch; the single re-auth on a 401 is the transport's, and the one renewal of
    refused cloud credentials is RegistryClient's.
  * How long: the server's `Retry-After` (seconds or an HTTP date), else exponential
    backoff with jitter: BASE_DELAY * 2**(n-1), capped at max_delay, times a random factor
    in [0.5, 1.0).
  * Callers retry whole operations (a complete blob upload, not one PATCH) and print one
    line per failed attempt through `on_retry(attempt, error, wait)`.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Callable

import tenacity

BASE_DELAY = 0.5
TOKEN_ATTEMPTS = 3
TOKEN_MAX_DELAY = 2.0


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt? Only errors that say so (see the module docstring)."""
    return bool(getattr(exc, "transient", False))


def backoff(attempt: int, max_delay: float, *, base: float = BASE_DELAY,
            rand: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt number `attempt` (1-based) when the server named none."""
    ceiling = min(max_delay, base * (2 ** max(0, attempt - 1)))
    return ceiling * (0.5 + rand() / 2)


class wait_policy(tenacity.wait.wait_base):
    """Retry-After when the failed attempt's error carries one (capped), else backoff."""

    def __init__(self, max_delay: float):
        self.max_delay = max_delay

    def __call__(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        return backoff(state.attempt_number, self.max_delay)


def retrying(attempts: int, max_delay: float, *, sleep: Callable[[float], None] = time.sleep,
             on_retry: Callable[[int, BaseException, float], None] | None = None
             ) -> tenacity.Retrying:
    """The attempts at one operation; the last error is re-raised unchanged.

        for attempt in retrying(5, 30.0, on_retry=report):
            with attempt:
                return operation()
    """
    def before_sleep(state: tenacity.RetryCallState) -> None:
        on_retry(state.attempt_number, state.outcome.exception(),
                 state.next_action.sleep if state.next_action else 0.0)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        wait=wait_policy(max_delay),
        retry=tenacity.retry_if_exception(is_transient),
        sleep=sleep,
        before_sleep=before_sleep if on_retry else None,
        reraise=True,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return max(0.0, seconds) if seconds == seconds else None  # NaN -> None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)
