"""In-memory token cache, one per process: a login is not repeated for every registry call.

An entry is reused until its refresh time: half the token's life for ECR (what
docker-credential-ecr-login does: 6 h of a 12 h token), `expires_at - margin` for
the others, a few minutes for tokens whose expiry we do not know. Nothing is written
to disk.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Callable, Hashable

from pipeline.auth.credentials import Credentials

DEFAULT_MARGIN = 300.0          # seconds before expiry that a token stops being reused
UNKNOWN_EXPIRY_TTL = 300.0      # reuse a token of unknown lifetime this long


class TokenCache:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._entries: dict[Hashable, tuple[Credentials, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Credentials | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._entries[key]
                return None
            return entry[0]

    def put(self, key: Hashable, creds: Credentials, *, half_life: bool = False,
            margin: float = DEFAULT_MARGIN) -> Credentials:
        """Remember `creds` until half its remaining life (`half_life`) or expiry - margin."""
        now = self._clock()
        expires = _epoch(creds.expires_at)
        if expires is None:
            refresh = now + UNKNOWN_EXPIRY_TTL
        elif half_life:
            refresh = now + (expires - now) / 2
        else:
            refresh = expires - margin
        if refresh > now:
            with self._lock:
                self._entries[key] = (creds, refresh)
        return creds

    def refresh_at(self, key: Hashable) -> float | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry[1] if entry else None

    def discard(self, creds: Credentials) -> None:
        """Forget every entry holding `creds` (a token about to expire, or one a registry
        refused): the next lookup asks the cloud again."""
        with self._lock:
            for key in [k for k, (c, _) in self._entries.items() if c is creds]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


CACHE = TokenCache()
