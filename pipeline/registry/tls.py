"""Which CAs to trust: the system ones, plus a registry's private CA (`ca_file`).

One cached ssl.SSLContext per CA setting, which urllib3 takes as it is:

  * the system CAs: OpenSSL's default paths (so SSL_CERT_FILE / SSL_CERT_DIR work), or
    certifi's bundle where the system has none; REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE name a
    file or directory that replaces them, as with requests and curl;
  * plus `ca_file`, which *adds* a CA as dockerd's certs.d does: the registry may use a
    private CA while its token realm or blob storage (S3, GCS) use public certificates.

The verifying context is built on the first HTTPS request (loading the system CAs takes
tens of milliseconds), so a plain-HTTP local registry costs nothing. Contexts are built
like urllib3's, without the VERIFY_X509_STRICT flag Python 3.13 adds to its defaults.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path

DOCKER_CERTS_D = Path("/etc/docker/certs.d")

_lock = threading.Lock()
_contexts: dict[tuple, ssl.SSLContext] = {}
_sources: dict[ssl.SSLContext, Path] = {}     # context -> the CA file added to it


def docker_certs_d_ca(host: str) -> Path | None:
    """The CA dockerd itself trusts for `host` (/etc/docker/certs.d/HOST[:PORT]/ca.crt), if any,
    so a registry that `docker push` trusts is trusted here without repeating it as `ca_file`."""
    path = DOCKER_CERTS_D / host / "ca.crt"
    return path if path.is_file() else None


def ssl_verify(ca_file: str | os.PathLike | None):
    """What a client verifies with: True (the system CAs, built when first needed) or the
    context trusting the system CAs and `ca_file`. Raises OSError when ca_file is missing
    or holds no PEM CA (ssl.SSLError is an OSError)."""
    return context(ca_file) if ca_file else True


def context(ca_file: str | os.PathLike | None = None) -> ssl.SSLContext:
    """The (cached) verifying context: the system or environment CAs, plus `ca_file`."""
    extra = Path(ca_file).resolve() if ca_file else None
    key = ("verify", _bundle(), os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"),
           _stat(extra))
    with _lock:                             # one build at a time: loading the CAs is slow
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = _verifying(key[1], extra)
            if extra is not None:
                _sources[ctx] = Path(ca_file)
    return ctx


def unverified() -> ssl.SSLContext:
    """For registries marked `insecure` (any certificate, as dockerd does for them)."""
    with _lock:
        ctx = _contexts.get(("none",))
        if ctx is None:
            ctx = _contexts[("none",)] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ca_source(ctx) -> tuple[str, Path] | None:
    """Which extra CA a verifying context trusts, for error messages: ("certs.d", path) for
    Docker's /etc/docker/certs.d/HOST/ca.crt, ("ca_file", path) for release.yml's ca_file,
    None for the system CAs only."""
    path = _sources.get(ctx) if ctx is not None else None
    if path is None:
        return None
    return ("certs.d" if path.parent.parent == DOCKER_CERTS_D else "ca_file"), path


def _bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _verifying(bundle: str | None, extra: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)    # CERT_REQUIRED + check_hostname
    if bundle:
        if os.path.isdir(bundle):
            ctx.load_verify_locations(capath=bundle)
        else:
            ctx.load_verify_locations(cafile=bundle)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if not ctx.cert_store_stats()["x509_ca"] and not _system_capath():
            try:
                # lazy: only when the system has no CA bundle
                import certifi
            except ImportError:
                pass
            else:
                ctx.load_verify_locations(cafile=certifi.where())
    if extra is not None:
        ctx.load_verify_locations(cafile=str(extra))
    return ctx


def _system_capath() -> bool:
    """A hashed CA directory loads its certificates lazily: it counts when it has entries."""
    capath = ssl.get_default_verify_paths().capath
    try:
        with os.scandir(capath or "") as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def _stat(path: Path | None):
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size)
