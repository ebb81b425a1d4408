"""When and how long to retry a registry operation (tenacity, once a retry is needed).

Policy (research §0.5, §3.3): retry connection errors and 408/429/5xx, waiting
`Retry-After` when the registry sends one (seconds or an HTTP date), otherwise
exponential backoff with jitter; cap every wait at `max_delay`; never retry
400/401/403/404 (the single re-auth on 401 happens in the transport).
Callers retry whole operations (a complete blob upload, not one PATCH).
"""

from __future__ import annotations

import random
import time
from typing import Callable

BASE_DELAY = 0.5


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return max(0.0, seconds) if seconds == seconds else None  # NaN -> None
    from email.utils import parsedate_to_datetime
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff(attempt: int, max_delay: float, *, base: float = BASE_DELAY,
            rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter for the wait after failed attempt number `attempt` (1-based).

    base * 2**(attempt-1), capped at max_delay, then scaled by a random factor in [0.5, 1.0).
    """
    ceiling = min(max_delay, base * (2 ** max(0, attempt - 1)))
    return ceiling * (0.5 + rand() / 2)


def should_retry(exc: BaseException) -> bool:
    """Only errors that say so (RegistryAPIError.transient): never auth, 4xx or digest errors."""
    return bool(getattr(exc, "transient", False))


def wait_for(exc: BaseException | None, attempt: int, max_delay: float) -> float:
    """Retry-After if the error carries one (capped at max_delay), else backoff."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return min(max_delay, retry_after)
    return backoff(attempt, max_delay)


class _Attempt:
    """The first attempt: `with attempt:` records a failure for retrying() to judge."""

    def __init__(self):
        self.error: BaseException | None = None

    def __enter__(self) -> "_Attempt":
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if isinstance(error, Exception):
            self.error = error
            return True
        return False


class _Failure:
    """What before_sleep hooks read of a failed attempt (tenacity.RetryCallState's names)."""

    def __init__(self, error: BaseException, attempt_number: int, sleep: float):
        self.attempt_number = attempt_number
        self.outcome = type("Outcome", (), {"exception": lambda _self: error})()
        self.next_action = type("Action", (), {"sleep": sleep})()


def retrying(attempts: int, max_delay: float, sleep: Callable[[float], None] = time.sleep,
             before_sleep: Callable | None = None):
    """The attempts at one registry operation; re-raises the last error unchanged.

        for attempt in retrying(5, 30.0):
            with attempt:
                return operation()

    The first attempt runs without tenacity, which is imported (it costs more than a
    request on a local registry) only once an attempt failed in a way worth retrying;
    tenacity.Retrying then runs the others, with the same policy and hook numbering.
    """
    first = _Attempt()
    yield first
    if first.error is None:
        return
    if attempts <= 1 or not should_retry(first.error):
        raise first.error
    import tenacity

    delay = wait_for(first.error, 1, max_delay)
    if before_sleep:
        before_sleep(_Failure(first.error, 1, delay))
    sleep(delay)

    def wait(state: "tenacity.RetryCallState") -> float:
        exc = state.outcome.exception() if state.outcome else None
        return wait_for(exc, state.attempt_number + 1, max_delay)

    def shifted(state: "tenacity.RetryCallState") -> None:
        before_sleep(_Failure(state.outcome.exception(), state.attempt_number + 1,
                              state.next_action.sleep if state.next_action else 0.0))

    yield from tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts - 1),
        wait=wait,
        retry=tenacity.retry_if_exception(should_retry),
        sleep=sleep,
        before_sleep=shifted if before_sleep else None,
        reraise=True,
    )
