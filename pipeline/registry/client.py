"""Talk to one registry's HTTP API: ping, resolve a reference to its manifest digest.

Scheme: HTTPS verified by default (`ca_file` for a private CA). Loopback hosts
and registries marked `insecure` may fall back to plain HTTP, as dockerd does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import warnings
from dataclasses import dataclass

from .. import redact
from ..credentials import ANONYMOUS, Credentials
from .auth import Challenge, TokenCache, fetch_token, parse_challenge

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class RegistryAPIError(Exception):
    def __init__(self, message: str, *, status: int | None = None, auth: bool = False,
                 transient: bool = False):
        super().__init__(redact.redact(message))
        self.status = status
        self.auth = auth
        self.transient = transient


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


class RegistryClient:
    def __init__(self, host: str, credentials: Credentials = ANONYMOUS, *, ca_file=None,
                 insecure: bool = False, timeout: float = 30.0):
        import requests  # lazy: keep CLI start-up fast

        self.host = host
        self.credentials = credentials
        self.timeout = timeout
        self._session = requests.Session()
        self._verify = str(ca_file) if ca_file else True
        self._may_use_http = insecure or is_loopback(host)
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._tokens = TokenCache()
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------
    def _ping(self):
        """Find a working base URL and the auth challenge, once."""
        import requests

        with self._lock:
            if self._base is not None:
                return
            # Like dockerd for insecure registries: verified TLS, then unverified TLS, then HTTP.
            attempts = [("https", self._verify)]
            if self._may_use_http:
                attempts += [("https", False), ("http", True)]
            last: Exception | None = None
            for scheme, verify in attempts:
                url = f"{scheme}://{self.host}/v2/"
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        resp = self._session.get(url, timeout=self.timeout, verify=verify)
                except requests.exceptions.ConnectionError as exc:  # includes SSLError
                    last = exc
                    continue
                if resp.status_code >= 500:
                    raise RegistryAPIError(f"{self.host}: /v2/ answered HTTP {resp.status_code}",
                                           status=resp.status_code, transient=True)
                self._base = f"{scheme}://{self.host}"
                self._verify = verify
                if resp.status_code == 401:
                    self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
                return
            raise RegistryAPIError(f"cannot reach registry {self.host}: {_short(last)}", transient=True)

    def _auth_headers(self, scope: str | None) -> dict[str, str]:
        ch = self._challenge
        if ch is None:
            return {}
        if ch.scheme == "basic":
            if self.credentials.password is None:
                return {}
            import base64
            pair = f"{self.credentials.username or ''}:{self.credentials.password}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if ch.scheme == "bearer" and scope:
            token = self._tokens.get(scope)
            if token is None:
                try:
                    token = fetch_token(self._session, ch, scope, self.credentials, self._verify)
                except PermissionError as exc:
                    raise RegistryAPIError(f"{self.host}: {exc}", auth=True) from None
                self._tokens.put(scope, token)
            return {"Authorization": f"Bearer {token}"}
        return {}

    def request(self, method: str, path: str, *, scope: str | None = None, headers=None, **kw):
        import requests

        self._ping()
        for attempt in range(2):
            hdrs = dict(headers or {})
            hdrs.update(self._auth_headers(scope))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    resp = self._session.request(method, self._base + path, headers=hdrs,
                                                 timeout=self.timeout, verify=self._verify, **kw)
            except requests.exceptions.RequestException as exc:
                raise RegistryAPIError(f"{self.host}: {method} {path}: {_short(exc)}",
                                       transient=True) from None
            if resp.status_code == 401 and attempt == 0:
                # Token expired or the scope grew: take the new challenge and re-auth once.
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
                if challenge is not None:
                    self._challenge = challenge
                if scope:
                    self._tokens.drop(scope)
                continue
            return resp
        return resp

    # -- manifests --------------------------------------------------------------------------
    def head_manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        """The digest a tag or digest resolves to, or None when the registry does not have it."""
        resp = self.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                            scope=f"repository:{repository}:pull",
                            headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if resp.status_code == 404:
            return None
        _raise_for(resp, self.host, f"manifest {repository}:{reference}")
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            # Some registries omit the header on HEAD: fetch and hash the bytes ourselves.
            return self.get_manifest(repository, reference)[1]
        return ManifestInfo(digest, resp.headers.get("Content-Type", ""),
                            int(resp.headers.get("Content-Length") or 0))

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, ManifestInfo]:
        resp = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                            scope=f"repository:{repository}:pull",
                            headers={"Accept": ", ".join(MANIFEST_TYPES)})
        _raise_for(resp, self.host, f"manifest {repository}:{reference}")
        body = resp.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest and claimed.startswith("sha256:"):
            raise RegistryAPIError(f"{self.host}: manifest {repository}:{reference} has digest "
                                   f"{digest} but the registry claims {claimed}")
        return body, ManifestInfo(digest, resp.headers.get("Content-Type", ""), len(body))


def _raise_for(resp, host: str, what: str) -> None:
    if resp.status_code < 400:
        return
    status = resp.status_code
    if status in (401, 403):
        raise RegistryAPIError(f"{host}: access to {what} denied (HTTP {status})", status=status, auth=True)
    transient = status in (408, 429) or status >= 500
    raise RegistryAPIError(f"{host}: {what}: HTTP {status}", status=status, transient=transient)


def _short(exc: Exception | None) -> str:
    text = str(exc) if exc else "unknown error"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    return redact.redact(text.splitlines()[0][:200])
