"""When and how long to retry a registry operation (tenacity).

Policy (research §0.5, §3.3): retry connection errors and 408/429/5xx, waiting
`Retry-After` when the registry sends one (seconds or an HTTP date), otherwise
exponential backoff with jitter; cap every wait at `max_delay`; never retry
400/401/403/404 (the single re-auth on 401 happens in the transport).
Callers retry whole operations (a complete blob upload, not one PATCH).
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
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


def retrying(attempts: int, max_delay: float, sleep: Callable[[float], None] = time.sleep,
             before_sleep: Callable | None = None):
    """A tenacity.Retrying for one registry operation; re-raises the last error unchanged."""
    import tenacity

    def wait(state: "tenacity.RetryCallState") -> float:
        exc = state.outcome.exception() if state.outcome else None
        return wait_for(exc, state.attempt_number, max_delay)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        wait=wait,
        retry=tenacity.retry_if_exception(should_retry),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
