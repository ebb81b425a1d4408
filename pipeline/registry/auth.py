"""Registry authentication: parse `WWW-Authenticate` and fetch Bearer tokens.

A registry answers 401 with either a Basic challenge (htpasswd registries) or a
Bearer challenge naming a token `realm`, `service` and `scope` (Docker Hub, ECR,
GHCR, distribution with `auth: token`). Tokens are cached per scope.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .. import redact
from ..credentials import Credentials

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


class TokenCache:
    """Bearer tokens per scope, shared by every request to one registry."""

    def __init__(self):
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, scope: str) -> str | None:
        with self._lock:
            return self._tokens.get(scope)

    def put(self, scope: str, token: str) -> None:
        redact.register(token)
        with self._lock:
            self._tokens[scope] = token

    def drop(self, scope: str) -> None:
        with self._lock:
            self._tokens.pop(scope, None)


def fetch_token(session, challenge: Challenge, scope: str, creds: Credentials, verify) -> str:
    """GET the realm (or POST an OAuth2 refresh token) and return the bearer token."""
    realm = challenge.params.get("realm")
    if not realm:
        raise PermissionError("registry sent a Bearer challenge without a realm")
    service = challenge.params.get("service")
    if creds.identity_token:
        data = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                "client_id": "release", "scope": scope}
        if service:
            data["service"] = service
        resp = session.post(realm, data=data, timeout=30, verify=verify)
        if resp.status_code != 404:
            return _token_from(resp)
    params = {"scope": scope}
    if service:
        params["service"] = service
    auth = (creds.username or "", creds.password) if creds.password else None
    resp = session.get(realm, params=params, auth=auth, timeout=30, verify=verify)
    return _token_from(resp)


def _token_from(resp) -> str:
    if resp.status_code in (401, 403):
        raise PermissionError(f"token endpoint refused the credentials (HTTP {resp.status_code})")
    resp.raise_for_status()
    body = resp.json()
    token = body.get("token") or body.get("access_token")
    if not token:
        raise PermissionError("token endpoint answered without a token")
    redact.register(token)
    if body.get("refresh_token"):
        redact.register(body["refresh_token"])
    return token
