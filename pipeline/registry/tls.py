"""Which CAs to trust: the system ones plus the registry's private CA (`ca_file`).

Like dockerd's certs.d, `ca_file` *adds* a CA: the registry itself may use a
private CA while its token realm or blob storage redirects (S3, GCS) use public
certificates. For the registry client (http.py) that is one cached SSLContext
per ca_file: the system CAs, then load_verify_locations(ca_file).

`verify_setting` is for code that still talks through requests (pipeline/cloud/acr.py):
requests takes one bundle file, so it gets the concatenation, written once per
ca_file to a private temporary file removed at exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path

_lock = threading.Lock()
_bundles: dict[str, str] = {}


DOCKER_CERTS_D = Path("/etc/docker/certs.d")


def docker_certs_d_ca(host: str) -> Path | None:
    """The CA dockerd itself trusts for `host` (/etc/docker/certs.d/HOST[:PORT]/ca.crt), if any,
    so a registry that `docker push` trusts is trusted here without repeating it as `ca_file`."""
    path = DOCKER_CERTS_D / host / "ca.crt"
    return path if path.is_file() else None


def ssl_verify(ca_file: str | os.PathLike | None):
    """The `verify=` value for http.Session: True (system CAs) or an ssl.SSLContext trusting
    the system CAs and `ca_file`. Raises OSError when ca_file is missing or holds no PEM CA
    (ssl.SSLError is an OSError)."""
    if not ca_file:
        return True
    from .http import ssl_context

    ctx = ssl_context(True, extra_cafile=Path(ca_file).resolve())
    with _lock:
        _sources[ctx] = Path(ca_file)
    return ctx


# SSLContext -> the CA file ssl_verify added to it (contexts are cached for the process).
_sources: dict = {}


def ca_source(context) -> tuple[str, Path] | None:
    """Which extra CA a verifying context trusts, for error messages: ("certs.d", path) for
    Docker's /etc/docker/certs.d/HOST/ca.crt, ("ca_file", path) for release.yml's ca_file,
    None for the system CAs only."""
    path = _sources.get(context) if context is not None else None
    if path is None:
        return None
    return ("certs.d" if path.parent.parent == DOCKER_CERTS_D else "ca_file"), path


def verify_setting(ca_file: str | os.PathLike | None):
    """The value for requests' `verify=`: True (system CAs) or a combined bundle path."""
    if not ca_file:
        return True
    key = str(Path(ca_file).resolve())
    with _lock:
        if key in _bundles:
            return _bundles[key]
        extra = Path(key).read_bytes()          # raises a clear OSError if missing
        import tempfile

        from requests.utils import DEFAULT_CA_BUNDLE_PATH
        system = Path(os.environ.get("REQUESTS_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH).read_bytes()
        fd, path = tempfile.mkstemp(prefix="release-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            out.write(system.rstrip(b"\n") + b"\n" + extra)
        atexit.register(_remove, path)
        _bundles[key] = path
        return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
