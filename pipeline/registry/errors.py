"""RegistryAPIError and the translation of an HTTP error response into one.

Every message passes through `redact.redact`, so a token echoed by a registry
(or a URL carrying one) never reaches a log.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import tempfile
from datetime import datetime, timezone

from pipeline.registry.retry import parse_retry_after
from pipeline.registry.tls import DOCKER_CERTS_D, ca_source
from pipeline.ui import redact

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
    loaded = getattr(resp, "_content", None)        # session.Response: the body once read, else None
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
    return RegistryAPIError(f"{host}: {what}: {short(exc, host)}",
                            transient=not certificate_refused(exc))


def certificate_refused(exc: BaseException | None) -> bool:
    """Did the connection fail on the server's certificate (never worth another attempt)?"""
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text \
        or "doesn't match" in text or "Hostname mismatch" in text


def short(exc: BaseException | None, host: str | None = None) -> str:
    text = str(exc) if exc else "unknown error"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        message, hint = tls_failure(exc, host)
        return f"{message} - {hint}"
    if "Read timed out" in text or "timed out" in text.lower():
        return "timed out"
    line = text.splitlines()[0] if text.splitlines() else text
    return redact.redact(f"{type(exc).__name__}: {line}"[:240])


# -- TLS certificate verification failures ----------------------------------------------------
# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code).
_EXPIRED = {10}                                  # CERT_HAS_EXPIRED
_NOT_YET_VALID = {9}                             # CERT_NOT_YET_VALID
_UNTRUSTED = {2, 18, 19, 20, 21}                 # no issuer / self-signed / unable to verify
_NAME_MISMATCH = {62, 64}                        # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH


def tls_failure(exc: BaseException | None, host: str | None = None) -> tuple[str, str]:
    """(message, hint) for a failed certificate verification, keeping OpenSSL's reason.

    `exc` is a session.SSLError (its verify_code, verify_message, server_name, context and
    peer_cert are used when present) or any exception whose text carries the reason;
    `host` is the registry as configured (HOST[:PORT]), for the certs.d path."""
    code = getattr(exc, "verify_code", None)
    reason = getattr(exc, "verify_message", None) or _reason_from_text(str(exc))
    lower = reason.lower()
    cert = _cert_facts(getattr(exc, "peer_cert", None))
    server = getattr(exc, "server_name", None) or (host or "").rsplit(":", 1)[0] or "the registry"
    openssl = f" (OpenSSL: {reason})" if reason else ""
    head = "TLS certificate verification failed"

    if code in _NAME_MISMATCH or "mismatch" in lower or "doesn't match" in lower:
        names = cert.get("names")
        if names:
            message = (f"{head}: the certificate is not valid for {server}; its names are "
                       f"{', '.join(names)}{openssl}")
            hint = (f"use one of those names as `registry:` in release.yml, or reissue the "
                    f"certificate with {server} in its subjectAltName")
        else:
            message = f"{head}: the host name {server} does not match the certificate{openssl}"
            hint = (f"use a name the certificate has as `registry:` in release.yml, or reissue "
                    f"the certificate with {server} in its subjectAltName")
        return message, hint

    if code in _EXPIRED or code in _NOT_YET_VALID or "expired" in lower or "not yet valid" in lower:
        not_after, not_before = cert.get("not_after"), cert.get("not_before")
        now = datetime.now(timezone.utc)
        if (code in _NOT_YET_VALID or "not yet valid" in lower) and not_before:
            message = (f"{head}: the registry's certificate is not valid before "
                       f"{_date(not_before)}{openssl}")
            hint = "check the clock of this machine, or reissue the certificate"
        elif not_after and not_after < now:
            message = f"{head}: the registry's certificate expired on {_date(not_after)}{openssl}"
            hint = "renew the registry's certificate (and check the clock of this machine)"
        else:
            message = f"{head}: a certificate in the registry's chain has expired{openssl}"
            hint = "renew the expired certificate (a CA or intermediate) and check the clock"
        return message, hint

    if code in _UNTRUSTED or "self-signed" in lower or "self signed" in lower \
            or "issuer" in lower or "unable to verify" in lower:

        source = ca_source(getattr(exc, "context", None))
        what = ("the registry's certificate is self-signed" if code == 18 or
                ("self-signed" in lower or "self signed" in lower) and "chain" not in lower
                else "the registry's certificate is not signed by a trusted CA")
        if cert.get("issuer"):
            what += f" (issuer: {cert['issuer']})"
        if source and source[0] == "ca_file":
            message = (f"{head}: {what}; trusted were the system CAs and ca_file {source[1]} "
                       f"from release.yml{openssl}")
            hint = ("this ca_file did not sign the registry's certificate: set ca_file to the "
                    "CA certificate that issued it")
        elif source:
            message = (f"{head}: {what}; trusted were the system CAs and Docker's "
                       f"{source[1]}{openssl}")
            hint = ("that certs.d ca.crt did not sign the registry's certificate: replace it "
                    "with the CA that issued it, or set `ca_file: path/to/ca.crt` on this "
                    "registry in release.yml")
        else:
            certs_d = DOCKER_CERTS_D / (host or server) / "ca.crt"
            message = (f"{head}: {what}; only the system CAs were trusted (no ca_file in "
                       f"release.yml, no {certs_d}){openssl}")
            hint = ("for a private CA, set `ca_file: path/to/ca.crt` on this registry in "
                    "release.yml")
        return message, hint

    return (f"{head}{openssl}",
            "check the registry's certificate; for a private CA set `ca_file: path/to/ca.crt`")


def _reason_from_text(text: str) -> str:
    """OpenSSL's reason from "... certificate verify failed: REASON (_ssl.c:1006)"."""

    m = re.search(r"certificate verify failed: (.*?)(?: \(_ssl\.c:\d+\))?(?:\)|$)", text)
    return m.group(1).strip() if m else ""


def _date(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _cert_facts(der: bytes | None) -> dict:
    """names (subjectAltName DNS and IP entries), not_before/not_after (aware datetimes) and
    issuer of a DER certificate; {} when it cannot be read (no certificate, no parser)."""
    if not der:
        return {}
    try:
        # lazy: only certificate work needs it (registry up --tls, TLS error details)
        from cryptography import x509
    except ImportError:
        return _cert_facts_ssl(der)
    try:
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = list(san.get_values_for_type(x509.DNSName))
            names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            names = []
        after = getattr(cert, "not_valid_after_utc", None) \
            or cert.not_valid_after.replace(tzinfo=timezone.utc)
        before = getattr(cert, "not_valid_before_utc", None) \
            or cert.not_valid_before.replace(tzinfo=timezone.utc)
        return {"names": names, "not_after": after, "not_before": before,
                "issuer": cert.issuer.rfc4514_string()[:200]}
    except Exception:
        return {}


def _cert_facts_ssl(der: bytes) -> dict:
    """The same without `cryptography`: the standard library's (private) certificate decoder."""

    try:
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(ssl.DER_cert_to_PEM_cert(der))
            info = ssl._ssl._test_decode_cert(path)
        finally:
            os.unlink(path)
        names = [v for k, v in info.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
        stamp = lambda key: datetime.fromtimestamp(ssl.cert_time_to_seconds(info[key]),  # noqa: E731
                                                   timezone.utc) if info.get(key) else None
        issuer = ",".join(f"{k}={v}" for rdn in info.get("issuer", ()) for k, v in rdn)
        return {"names": names, "not_after": stamp("notAfter"), "not_before": stamp("notBefore"),
                "issuer": issuer[:200] or None}
    except Exception:
        return {}
