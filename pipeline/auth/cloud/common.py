"""What the cloud adapters share: their errors, the CLI runner, quiet SDK logs, JWT claims.

Nothing here imports a cloud SDK.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

from pipeline.errors import ReleaseError
from pipeline.ui import redact

CLI_TIMEOUT = 60.0


class NotConfigured(Exception):
    """This adapter found nothing to log in with (no SDK credentials, no CLI, no env vars).

    Not an error by itself: the dispatcher then tries the Docker config, and only if that
    has nothing either does it become a UsageError (cloud types) or anonymous access.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class CloudAuthError(ReleaseError):
    """The cloud refused, or could not be reached: exit code 1, with a hint."""


class CliFailed(CloudAuthError):
    """A cloud CLI exited non-zero; `stderr` (unredacted: never show it whole) and `returncode`
    let an adapter tell "not logged in" (fall back to the Docker config) from a refusal."""

    def __init__(self, message: str, *, hint: str | None = None, stderr: str = "",
                 returncode: int = 1):
        super().__init__(message, hint=hint)
        self.stderr = stderr
        self.returncode = returncode

    @property
    def first_line(self) -> str:
        return first_line(self.stderr)


def pip_hint(extra: str) -> str:
    return f"pip install 'release-pipeline[{extra}]'"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime (naive = UTC) or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def in_hours(hours: float) -> datetime:
    return utcnow() + timedelta(hours=hours)


def which(name: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=env.get("PATH", os.defpath))


def run_cli(argv: Sequence[str], env: Mapping[str, str], *, what: str, hint: str,
            timeout: float = CLI_TIMEOUT, extra_env: Mapping[str, str] | None = None) -> str:
    """Run a cloud CLI and return its stdout (which holds a secret: never log or echo it).

    A failure becomes CloudAuthError with the last lines of stderr, redacted.
    """
    path = which(argv[0], env)
    if path is None:
        raise NotConfigured(f"`{argv[0]}` is not on PATH", hint=hint)
    try:
        proc = subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env={**env, **(extra_env or {})})
    except subprocess.TimeoutExpired:
        raise CloudAuthError(f"{what}: `{' '.join(argv[:3])}` did not answer within "
                             f"{timeout:.0f}s", hint=hint) from None
    except OSError as exc:
        raise CloudAuthError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}",
                             hint=hint) from None
    if proc.returncode != 0:
        raise CliFailed(f"{what}: `{' '.join(argv[:3])}` failed (exit {proc.returncode}): "
                        f"{last_lines(proc.stderr) or 'no message'}", hint=hint,
                        stderr=proc.stderr or "", returncode=proc.returncode)
    return proc.stdout


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line of `text`, stripped, redacted and cut at `limit` characters."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    if len(line) > limit:
        line = line[:limit] + "..."
    return redact.redact(line)


_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")


def summarise_body(text: str, status: int | None = None, limit: int = 160) -> str:
    """A short, one-line account of an error body that is not the JSON we expected (an HTML
    page from a proxy, a stack trace...): the status, then the page title or first line of
    text, truncated; never the whole body."""
    text = text or ""
    head = f"HTTP {status}" if status is not None else ""
    stripped = text.lstrip()
    if stripped[:1] == "<":
        title = _TITLE_RE.search(text[:20000])
        shown = (" ".join(title.group(1).split()) if title else
                 first_line("\n".join(_TAG_RE.sub(" ", ln) for ln in text[:20000].splitlines()),
                            limit))
        kind = "an HTML page"
    else:
        shown, kind = first_line(text, limit), "a non-JSON body"
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    shown = redact.redact(shown)
    size = len(text.encode("utf-8", "replace"))
    body = f"{kind} of {size} bytes" + (f": {shown}" if shown else "")
    return f"{head} ({body})" if head else body


def looks_like_json(text: str) -> bool:
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return False
    return True


def last_lines(text: str, n: int = 3, limit: int = 400) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    shown = " / ".join(lines[-n:])
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    return redact.redact(shown)


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = logging.NOTSET


@contextlib.contextmanager
def quiet_logs():
    """No DEBUG log records while a secret crosses an SDK.

    botocore, urllib3, msal and google-auth log raw response bodies at DEBUG, before we get
    a chance to register the token they carry with `redact`; a user running with DEBUG
    logging would see it. INFO and above still flow.
    """
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = logging.root.manager.disable
            logging.disable(max(logging.DEBUG, _quiet_saved))
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                logging.disable(_quiet_saved)


_level_lock = threading.Lock()
_level_depth: dict[str, int] = {}
_level_saved: dict[str, int] = {}


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.ERROR):
    """Raise these loggers to `level` while an SDK runs (azure-identity logs a 15-line WARNING
    for every credential it tried; our own error says what failed, in one line). Nested and
    threaded uses are counted; the loggers' own levels come back afterwards."""
    with _level_lock:
        for name in names:
            if _level_depth.get(name, 0) == 0:
                logger = logging.getLogger(name)
                _level_saved[name] = logger.level
                logger.setLevel(max(level, logger.level))
            _level_depth[name] = _level_depth.get(name, 0) + 1
    try:
        yield
    finally:
        with _level_lock:
            for name in names:
                _level_depth[name] -= 1
                if _level_depth[name] == 0:
                    logging.getLogger(name).setLevel(_level_saved.pop(name, logging.NOTSET))


def jwt_claims(token: str | None) -> dict:
    """The payload of a JWT, unverified (for expiry, tenant, user name); {} if not a JWT."""
    if not token or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
