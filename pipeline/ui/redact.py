"""One place that knows every secret obtained during a run, so nothing prints them.

Every adapter that reads a password or token calls `register(secret)`; every
piece of text that leaves the process (progress lines, errors, reports) goes
through `redact(text)`. In GitHub Actions, `register` also emits `::add-mask::`
so the runner masks the value in its own logs.
"""

from __future__ import annotations

import base64
import os
import sys
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"


def _mask_command(value: str) -> str:
    # workflow-command data escaping: the runner reads one line per command
    return "::add-mask::" + value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def register(secret: str | None) -> None:
    """Remember a secret (and its usual encodings) so `redact` hides it.

    A multi-line secret (a service-account JSON, a PEM key) is also remembered line by line:
    the GitHub runner masks per line, and a partial key must not print either.
    """
    if not secret or len(secret) < 4:
        return
    variants = {secret}
    try:
        variants.add(base64.b64encode(secret.encode()).decode())
    except Exception:  # pragma: no cover - str always encodes
        pass
    for line in secret.splitlines():
        if len(line.strip()) >= 4:
            variants.add(line.strip())
    with _lock:
        new = variants - _secrets
        _secrets.update(variants)
    if new and os.environ.get("GITHUB_ACTIONS") == "true":
        # stderr: the runner reads workflow commands from both streams, and stdout
        # must stay clean for --json. One command per line of each value.
        for value in sorted(new):
            for line in value.splitlines() or [value]:
                if len(line.strip()) >= 4:
                    sys.stderr.write(_mask_command(line.strip()) + "\n")
        sys.stderr.flush()


def register_basic(username: str | None, password: str | None) -> None:
    """Register a password and the base64 `user:password` pair Basic auth sends."""
    register(password)
    if username and password:
        register(base64.b64encode(f"{username}:{password}".encode()).decode())


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def clear() -> None:
    """Forget every secret (tests)."""
    with _lock:
        _secrets.clear()
