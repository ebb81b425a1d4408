"""Bound the number of concurrent operations per registry host, across all clients.

    with LIMITER.hold("src.example", "dst.example"):   # both slots, acquired in sorted order
        ...

Slots are re-entrant per thread: an operation that calls another operation on
the same host (a copy job that streams from src while uploading to dst) does
not take a second slot, so nested calls cannot deadlock. Several hosts are
always acquired in sorted order, so two copies in opposite directions cannot
deadlock either.
"""

from __future__ import annotations

import contextlib
import threading

DEFAULT_PER_HOST = 4


class HostLimiter:
    def __init__(self, per_host: int = DEFAULT_PER_HOST):
        self.per_host = per_host
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._held = threading.local()

    def _semaphore(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._semaphores.get(host)
            if sem is None:
                sem = self._semaphores[host] = threading.BoundedSemaphore(self.per_host)
            return sem

    @contextlib.contextmanager
    def hold(self, *hosts: str):
        held: dict[str, int] = self._held.__dict__.setdefault("counts", {})
        taken: list[str] = []
        try:
            for host in sorted({h.lower() for h in hosts}):
                if held.get(host):
                    held[host] += 1
                else:
                    self._semaphore(host).acquire()
                    held[host] = 1
                taken.append(host)
            yield
        finally:
            for host in reversed(taken):
                held[host] -= 1
                if not held[host]:
                    del held[host]
                    self._semaphore(host).release()


LIMITER = HostLimiter()
