"""One registry's HTTP connection: scheme choice, authentication, one re-auth on 401.

Scheme: HTTPS, verified (system CAs + `ca_file`). Plain HTTP only for loopback
hosts (hosts.is_loopback; asked first there) or registries marked `insecure` (after
HTTPS failed to connect); `insecure` also allows HTTPS with an unverified certificate
(as dockerd does for insecure registries).

Auth: the challenge comes from `GET /v2/` (some registries omit it on other
requests). Basic -> credentials on every request; Bearer -> a token per scope
set (auth.py); `registry_token` credentials are sent as the Bearer token as is.
A 401 is answered once: a new token (with the challenge's extra scope, e.g.
`insufficient_scope`) or Basic credentials not sent yet; re-sending Basic
credentials that were just refused is pointless and is not done. A request
whose body was a stream cannot be replayed: its 401 is raised as transient so
the caller's retry reopens the source.

HTTP goes through session.Session (urllib3 pools, proxies from the environment, redirects
without the Authorization header once they leave the registry). No retries here: callers
retry whole operations (retry.py).
"""

from __future__ import annotations

import base64
import threading
from dataclasses import replace
from urllib.parse import urlsplit

from pipeline.auth.credentials import Credentials
from pipeline.registry.auth import (
    Challenge,
    TokenCache,
    fetch_token,
    merge_scopes,
    parse_challenge,
)
from pipeline.registry.errors import RegistryAPIError, connection_error, from_response
from pipeline.registry.hosts import is_loopback
from pipeline.registry.reference import api_host
from pipeline.registry.session import HTTPError, Session
from pipeline.ui import redact


class Transport:
    def __init__(self, host: str, credentials: Credentials, *, verify, insecure: bool,
                 timeout: float, pool_size: int = 16):
        self.host = host
        self.api_host = api_host(host)
        self.credentials = credentials
        # Whatever we may put in a header must never be printed (credentials.py registers
        # what it reads; clients built from other sources get the same protection).
        redact.register_basic(credentials.username, credentials.password)
        redact.register(credentials.identity_token)
        redact.register(credentials.registry_token)
        self.timeout = timeout
        self.insecure = insecure
        self.allow_http = insecure or is_loopback(self.api_host)
        self.session = Session(pool_size=pool_size)
        self.verify = verify
        self.base: str | None = None
        self.challenge: Challenge | None = None
        self.tokens = TokenCache()
        self._refresh_token: str | None = None       # a rotated identity token from the realm
        self._ping_lock = threading.Lock()
        self._token_lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------
    def ping(self) -> None:
        """Find a working base URL and the auth challenge (once; failures are not cached)."""
        if self.base is not None:
            return
        with self._ping_lock:
            if self.base is not None:
                return
            attempts = [("https", self.verify)]
            if self.insecure:
                attempts.append(("https", False))
            if is_loopback(self.api_host):
                # Plain HTTP first: local registries mostly speak it, the ping carries no
                # credentials, and a TLS one answers 400 at once (then HTTPS, as before).
                attempts.insert(0, ("http", True))
            elif self.allow_http:
                attempts.append(("http", True))
            errors: list[Exception] = []
            for scheme, verify in attempts:
                url = f"{scheme}://{self.api_host}/v2/"
                try:
                    resp = self.session.get(url, timeout=self.timeout, verify=verify)
                except HTTPError as exc:
                    errors.append(exc)
                    continue
                with resp:
                    if resp.status_code >= 500 or resp.status_code in (408, 429):
                        raise from_response(resp, self.host, "GET /v2/")
                    if scheme == "http" and resp.status_code not in (200, 401):
                        # e.g. 400 "Client sent an HTTP request to an HTTPS server"
                        errors.append(RuntimeError(f"HTTP {resp.status_code} on {url}"))
                        continue
                    if (resp.status_code == 200
                            and not resp.headers.get("Docker-Distribution-API-Version")
                            and resp.headers.get("Content-Type", "").startswith("text/html")):
                        raise RegistryAPIError(
                            f"{self.host}: GET /v2/ answered with a web page, not the registry "
                            f"API - is `registry:` the registry's own host (e.g. ghcr.io, "
                            f"123456789012.dkr.ecr.us-east-1.amazonaws.com)?", status=200)
                    if resp.status_code == 401:
                        self.challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
                self.verify = verify
                self.base = f"{scheme}://{self.api_host}"
                return
            hint = "" if self.allow_http else " (plain HTTP is only tried for loopback hosts or insecure registries)"
            # The last error, unless HTTPS failed certificate verification (the useful one).
            shown = next((e for e in errors if "CERTIFICATE_VERIFY_FAILED" in str(e)
                          or "doesn't match" in str(e)), errors[-1] if errors else None)
            raise connection_error(self.host, f"cannot reach the registry API{hint}", shown)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base + path_or_url

    def same_origin(self, url: str) -> bool:
        a, b = urlsplit(self.base or ""), urlsplit(url)
        return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())

    # -- auth -------------------------------------------------------------------------------
    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        ch, creds = self.challenge, self.credentials
        if ch is None:
            return None
        if ch.scheme == "basic":
            if creds.password is None:
                return None
            pair = f"{creds.username or ''}:{creds.password}"
            return "Basic " + base64.b64encode(pair.encode()).decode()
        if ch.scheme == "bearer":
            if creds.registry_token:
                return f"Bearer {creds.registry_token}"
            token = self.tokens.get(scopes)
            if token is None:
                with self._token_lock:          # one token request per scope set at a time
                    token = self.tokens.get(scopes)
                    if token is None:
                        result = fetch_token(self.session, ch, scopes, self._token_credentials(),
                                             verify=self.verify, timeout=self.timeout,
                                             allow_http=self.insecure, host=self.host)
                        if result.refresh_token:
                            self._refresh_token = result.refresh_token
                        self.tokens.put(scopes, result.token, result.lifetime)
                        token = result.token
            return f"Bearer {token}"
        return None

    def _token_credentials(self) -> Credentials:
        """Use a refresh token the token endpoint handed out in place of the configured one."""
        creds = self.credentials
        if self._refresh_token and creds.identity_token:
            return replace(creds, identity_token=self._refresh_token)
        return creds

    def _can_reauth(self, resp, scopes: tuple[str, ...], sent: str | None) -> tuple[bool, tuple[str, ...]]:
        """After a 401: is one more attempt worth it, and with which scopes?"""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
        if challenge is None:
            challenge = self.challenge
        if challenge is None:
            return False, scopes
        if challenge.scheme == "basic":
            if sent and sent.startswith("Basic "):
                return False, scopes            # these credentials were just refused
            if self.credentials.password is None:
                return False, scopes
            self.challenge = challenge
            return True, scopes
        if challenge.scheme == "bearer":
            if self.credentials.registry_token and sent:
                return False, scopes
            self.challenge = challenge
            self.tokens.drop(scopes)
            return True, merge_scopes(challenge.scopes, scopes)
        return False, scopes

    # -- requests ---------------------------------------------------------------------------
    def request(self, method: str, path_or_url: str, *, scopes: tuple[str, ...] = (),
                headers: dict | None = None, data=None, stream: bool = False,
                replayable: bool = True, what: str | None = None, allow_redirects: bool = True):
        """Send one request (plus at most one re-auth); return the response, whatever its status.

        Connection errors become RegistryAPIError(transient=True). Bodies that are
        iterators must pass replayable=False.
        """
        self.ping()
        url = self.url(path_or_url)
        what = what or f"{method} {urlsplit(url).path}"
        resp = None
        for attempt in range(2):
            hdrs = dict(headers or {})
            auth = self._authorization(scopes) if self.same_origin(url) else None
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = self.session.request(method, url, headers=hdrs, data=data, stream=stream,
                                            timeout=self.timeout, verify=self.verify,
                                            allow_redirects=allow_redirects)
            except RegistryAPIError:
                raise                           # from a verifying body iterator
            except HTTPError as exc:
                raise connection_error(self.host, what, exc) from None
            if resp.status_code != 401 or attempt == 1:
                return resp
            again, new_scopes = self._can_reauth(resp, scopes, auth)
            if not again:
                return resp
            resp.close()
            scopes = new_scopes
            if not replayable:
                raise RegistryAPIError(f"{self.host}: {what}: token rejected while streaming "
                                       "(expired?); the whole operation will be retried",
                                       status=401, transient=True)
        return resp
