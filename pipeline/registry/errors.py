"""RegistryAPIError and the translation of an HTTP error response into one.

Every message passes through `redact.redact`, so a token echoed by a registry
(or a URL carrying one) never reaches a log.
"""

from __future__ import annotations

import json

from .. import redact
from .retry import parse_retry_after

MAX_ERROR_BODY = 64 * 1024
TRANSIENT_STATUSES = frozenset({408, 429, 499, 500, 502, 503, 504, 522})
TRANSIENT_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE"})


class RegistryAPIError(Exception):
    """A registry refused or failed a request.

    status     HTTP status (None for connection-level failures)
    auth       credentials missing/wrong/insufficient (401/403, token endpoint refusals)
    transient  worth retrying (connection errors, 408/429/5xx)
    code       first OCI error code of the body (`MANIFEST_UNKNOWN`, `DENIED`, ...) if any
    retry_after seconds the registry asked us to wait (Retry-After), if any
    """

    def __init__(self, message: str, *, status: int | None = None, auth: bool = False,
                 transient: bool = False, code: str | None = None,
                 retry_after: float | None = None):
        super().__init__(redact.redact(message))
        self.status = status
        self.auth = auth
        self.transient = transient
        self.code = code
        self.retry_after = retry_after


class DigestMismatch(RegistryAPIError):
    """Content whose sha256 is not the digest it was fetched or pushed under. Never retried."""


def error_details(resp) -> tuple[str | None, str]:
    """(first error code, "CODE: message; ...") from an OCI error body; tolerates any body."""
    raw = _body_prefix(resp)
    try:
        errors = json.loads(raw or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        text = raw.decode("utf-8", "replace").strip().splitlines()
        return None, text[0][:200] if text else ""
    if not isinstance(errors, list):
        errors = []
    parts, first = [], None
    for err in errors[:5]:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or "")
        first = first or code or None
        msg = str(err.get("message") or "")
        parts.append(f"{code}: {msg}" if code and msg else code or msg)
    return first, "; ".join(p for p in parts if p)[:400]


def _body_prefix(resp) -> bytes:
    """At most MAX_ERROR_BODY bytes of the body (works for streamed and loaded responses)."""
    loaded = getattr(resp, "_content", None)        # http.Response: the body once read, else None
    if isinstance(loaded, bytes):
        return loaded[:MAX_ERROR_BODY]
    chunks, n = [], 0
    try:
        for chunk in resp.iter_content(8192):
            chunks.append(chunk)
            n += len(chunk)
            if n >= MAX_ERROR_BODY:
                break
    except Exception:
        pass
    return b"".join(chunks)[:MAX_ERROR_BODY]


def from_response(resp, host: str, what: str, *, hint: str | None = None,
                  retry_after: float | None = None, auth: bool | None = None) -> RegistryAPIError:
    """Build the error for a failed response (status >= 400) without raising it."""
    status = resp.status_code
    if retry_after is None:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    code, detail = error_details(resp)
    auth = status in (401, 403) if auth is None else auth
    transient = status in TRANSIENT_STATUSES or (status >= 500) or (code in TRANSIENT_CODES)
    if status == 401:
        reason = "authentication required or credentials rejected"
    elif status == 403:
        reason = "access denied"
    elif status == 404:
        reason = "not found"
    elif status == 429:
        reason = "too many requests"
    else:
        reason = f"HTTP {status}"
    message = f"{host}: {what}: {reason}"
    if not reason.startswith("HTTP"):
        message += f" (HTTP {status})"
    if detail:
        message += f": {detail}"
    if hint:
        message += f" - {hint}"
    return RegistryAPIError(message, status=status, auth=auth, transient=transient, code=code,
                            retry_after=retry_after)


def connection_error(host: str, what: str, exc: BaseException | None) -> RegistryAPIError:
    """A request that got no HTTP answer. Transient, except TLS verification failures."""
    text = str(exc)
    tls = "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text \
        or "doesn't match" in text or "Hostname mismatch" in text
    return RegistryAPIError(f"{host}: {what}: {short(exc)}", transient=not tls)


def short(exc: BaseException | None) -> str:
    text = str(exc) if exc else "unknown error"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate verification failed (set ca_file for a private CA)"
    if "Read timed out" in text or "timed out" in text.lower():
        return "timed out"
    line = text.splitlines()[0] if text.splitlines() else text
    return redact.redact(f"{type(exc).__name__}: {line}"[:240])
