"""Registry authentication: `WWW-Authenticate` challenges, scopes, Bearer tokens.

A registry answers 401 with a Basic challenge (htpasswd registries, ECR) or a
Bearer challenge naming a token `realm`, `service` and `scope` (Docker Hub,
GHCR, ACR, distribution with `auth: token`). Bearer tokens are cached per set
of scopes, with their expiry; a cached token whose scopes cover a request's
scopes is reused (a `pull,push` token serves a later `pull`).

Token fetch (the distribution token specification):
  * identity token (config.json `identitytoken`, ACR): POST the realm with the
    OAuth2 refresh-token grant; a 404 falls back to GET.
  * username/password: GET the realm with Basic auth and `scope` parameters.
  * anonymous: GET the realm without auth.
Every token obtained is registered with `redact`.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline.auth.credentials import Credentials
from pipeline.registry.errors import RegistryAPIError, connection_error, from_response
from pipeline.registry.hosts import is_loopback
from pipeline.registry.session import HTTPError
from pipeline.ui import redact

DEFAULT_TOKEN_LIFETIME = 60.0     # distribution token spec: "defaults to 60 seconds"
EXPIRY_MARGIN = 10.0
CLIENT_ID = "release-pipeline"

# auth-param = token "=" ( token / quoted-string ), quoted-string may contain commas and \"
_PARAM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')
_SCHEME = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)(?=\s|$)')


@dataclass(frozen=True)
class Challenge:
    scheme: str                         # lower case: "basic", "bearer", ...
    params: dict[str, str] = field(default_factory=dict)   # keys lower-cased

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def parse_challenges(header: str | None) -> list[Challenge]:
    """All challenges of a `WWW-Authenticate` value (schemes case-insensitive)."""
    found: list[Challenge] = []
    if not header:
        return found
    pos, n = 0, len(header)
    while pos < n:
        while pos < n and header[pos] in " \t,":
            pos += 1
        m = _SCHEME.match(header, pos)
        if not m:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while pos < n:
            p = _PARAM.match(header, pos)
            if not p:
                break
            value = p.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[p.group(1).lower()] = value
            pos = p.end()
        found.append(Challenge(scheme, params))
        if pos < n and not _SCHEME.match(header, pos):
            break       # token68 or garbage we do not understand: stop
    return found


def parse_challenge(header: str | None) -> Challenge | None:
    """The challenge to answer: Bearer if offered, else Basic, else the first one."""
    challenges = parse_challenges(header)
    for wanted in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == wanted:
                return ch
    return challenges[0] if challenges else None


# -- scopes ------------------------------------------------------------------------------------

def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions or ('pull',))}"


def merge_scopes(*groups) -> tuple[str, ...]:
    """Union of scopes, first occurrence first (registries may only read the first one)."""
    order: list[str] = []
    actions: dict[str, list[str]] = {}
    for group in groups:
        for scope in ([group] if isinstance(group, str) else group or ()):
            resource, _, acts = scope.rpartition(":")
            if not resource:
                resource, acts = scope, ""
            if resource not in actions:
                order.append(resource)
                actions[resource] = []
            for a in acts.split(","):
                if a and a not in actions[resource]:
                    actions[resource].append(a)
    return tuple(f"{r}:{','.join(actions[r])}" if actions[r] else r for r in order)


def covers(have: tuple[str, ...], need: tuple[str, ...]) -> bool:
    granted: dict[str, set[str]] = {}
    for scope in have:
        resource, _, acts = scope.rpartition(":")
        granted.setdefault(resource, set()).update(acts.split(","))
    for scope in need:
        resource, _, acts = scope.rpartition(":")
        got = granted.get(resource, set())
        if "*" not in got and not set(a for a in acts.split(",") if a) <= got:
            return False
    return True


class TokenCache:
    """Bearer tokens per scope set, with expiry, shared by every request to one registry."""

    def __init__(self, clock=time.monotonic):
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, scopes: tuple[str, ...]) -> str | None:
        now = self._clock()
        with self._lock:
            exact = self._tokens.get(scopes)
            if exact and exact[1] > now:
                return exact[0]
            for have, (token, expires) in self._tokens.items():
                if expires > now and covers(have, scopes):
                    return token
        return None

    def put(self, scopes: tuple[str, ...], token: str, lifetime: float = DEFAULT_TOKEN_LIFETIME) -> None:
        redact.register(token)
        expires = self._clock() + max(1.0, lifetime - EXPIRY_MARGIN if lifetime > 2 * EXPIRY_MARGIN
                                      else lifetime / 2)
        with self._lock:
            self._tokens[scopes] = (token, expires)

    def drop(self, scopes: tuple[str, ...]) -> None:
        """Forget the token used for `scopes` (and any token that would be reused for them)."""
        with self._lock:
            for have in [h for h in self._tokens if h == scopes or covers(h, scopes)]:
                del self._tokens[have]


# -- token endpoint ----------------------------------------------------------------------------

@dataclass
class TokenResult:
    token: str = field(repr=False)
    lifetime: float = 0.0
    refresh_token: str | None = field(default=None, repr=False)


def fetch_token(session, challenge: Challenge, scopes: tuple[str, ...], creds: Credentials, *,
                verify, timeout: float, allow_http: bool, host: str) -> TokenResult:
    """Ask the realm of a Bearer challenge for a token covering `scopes`.

    `session` is the transport's session.Session. `allow_http`: the registry is marked insecure
    (plain-HTTP realms anywhere are accepted)."""
    realm = challenge.params.get("realm")
    if not realm:
        raise RegistryAPIError(f"{host}: registry sent a Bearer challenge without a realm", auth=True)
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise RegistryAPIError(f"{host}: token realm is not an http(s) URL: {realm}", auth=True)
    secret = creds.identity_token or creds.password
    # A loopback registry may speak plain HTTP, but the realm it names is another host:
    # credentials go over plain HTTP only to a loopback realm, or when the user said insecure.
    realm_host = parts.netloc.rpartition("@")[2]
    if parts.scheme == "http" and secret and not (allow_http or is_loopback(realm_host)):
        raise RegistryAPIError(
            f"{host}: refusing to send credentials to the plain-HTTP token realm {realm} "
            "(mark the registry insecure if this is intended)", auth=True)
    service = challenge.params.get("service")
    what = f"token request to {parts.netloc}"
    try:
        if creds.identity_token:
            data = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": CLIENT_ID, "scope": " ".join(scopes)}
            if service:
                data["service"] = service
            resp = session.post(realm, data=data, timeout=timeout, verify=verify)
            if resp.status_code != 404:
                return _token_from(resp, host, what)
            resp.close()
        params: list[tuple[str, str]] = [("scope", s) for s in scopes]
        if service:
            params.insert(0, ("service", service))
        auth = (creds.username or "", creds.password) if creds.password else None
        if auth is None and creds.identity_token:
            auth = (creds.username or "<token>", creds.identity_token)
        params.append(("client_id", CLIENT_ID))
        resp = session.get(realm, params=params, auth=auth, timeout=timeout, verify=verify)
        return _token_from(resp, host, what)
    except HTTPError as exc:
        raise connection_error(host, what, exc) from None


def _token_from(resp, host: str, what: str) -> TokenResult:
    if resp.status_code in (400, 401, 403):
        raise from_response(resp, host, what, hint="the token endpoint refused the credentials",
                            auth=True)
    if resp.status_code >= 400:
        raise from_response(resp, host, what)
    try:
        body = resp.json()
    except ValueError:
        raise RegistryAPIError(f"{host}: {what}: answer is not JSON", auth=True) from None
    if not isinstance(body, dict):
        raise RegistryAPIError(f"{host}: {what}: answer is not a JSON object", auth=True)
    token = body.get("token") or body.get("access_token")
    if not token:
        raise RegistryAPIError(f"{host}: {what}: answer has no token", auth=True)
    redact.register(token)
    refresh = body.get("refresh_token")
    redact.register(refresh)
    try:
        lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME
    return TokenResult(token, lifetime, refresh)
