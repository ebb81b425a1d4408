"""Prove a registry's credentials: `/v2/` with them, and a push-scope token where one is issued.

Basic-auth registries (distribution with htpasswd, ECR, Harbor...) answer `GET /v2/`
200 or 401: that proves the credentials, not the push permission (checked at push time).
Token registries (Docker Hub, GHCR, ACR, GitLab, Artifact Registry...) are asked for a
`repository:REPO:pull,push` token; when the token is a JWT with an `access` claim we
check that it really grants push (token servers quietly grant less than asked).

A token whose `expires_at` is already past is tried all the same: the registry's clock
decides, not ours (a few minutes of skew must not refuse a fresh token). Only when the
registry refuses it does the message say it expired.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.auth.cloud.common import jwt_claims, utcnow
from pipeline.auth.credentials import Credentials
from pipeline.registry.auth import repository_scope
from pipeline.registry.client import RegistryAPIError, RegistryClient


@dataclass
class Proof:
    ok: bool
    detail: str
    hint: str | None = None


def prove(registry, creds: Credentials, *, timeout: float = 30.0) -> Proof:
    proof = _prove(registry, creds, timeout=timeout)
    if creds.expires_at is None or creds.expires_at > utcnow():
        return proof
    when = f"{creds.expires_at:%Y-%m-%d %H:%M:%S}Z"
    if proof.ok:
        return Proof(True, f"{proof.detail} (by this machine's clock the token expired at "
                           f"{when}: check the clock)", hint=proof.hint)
    return Proof(False, f"{proof.detail}; the token expired at {when}",
                 hint="log in to the cloud again (an expired token is not reused), and check "
                      "this machine's clock")


def _prove(registry, creds: Credentials, *, timeout: float) -> Proof:
    client = RegistryClient(registry.registry, creds,
                            ca_file=registry.ca_file,
                            insecure=registry.insecure, timeout=timeout, retry_attempts=2,
                            retry_max_delay=2.0)
    scopes = (repository_scope(registry.repository, "pull", "push"),)
    transport = client._transport     # the client's own auth logic, without a repository call

    def check() -> Proof:
        transport.ping()
        challenge = transport.challenge
        if challenge is None:
            return Proof(True, "the registry asks for no authentication")
        resp = transport.request("GET", "/v2/", scopes=scopes, what="GET /v2/ (login check)")
        with resp:
            status = resp.status_code
        if status == 200:
            if challenge.scheme == "bearer" and not creds.registry_token:
                return _push_scope(transport.tokens.get(scopes), registry.repository)
            return Proof(True, "credentials accepted (Basic auth: the push permission is "
                               "only checked by a push)" if challenge.scheme == "basic" else
                         "credentials accepted")
        if status in (401, 403):
            if creds.anonymous:
                return Proof(False, "the registry wants credentials and none were found",
                             hint=creds.note)
            return Proof(False, f"the registry refused the credentials (HTTP {status})",
                         hint=f"they came from {creds.source}; check they are current and "
                              "allowed on this registry")
        return Proof(False, f"GET /v2/ answered HTTP {status}")

    try:
        return client._run("login check", check)
    except RegistryAPIError as exc:
        hint = getattr(exc, "hint", None)
        if exc.auth and not hint:
            hint = (creds.note if creds.anonymous else
                    f"they came from {creds.source}; check they are current and allowed on this "
                    "registry")
        return Proof(False, str(exc), hint=hint)
    finally:
        client.close()


def _push_scope(token: str | None, repository: str) -> Proof:
    claims = jwt_claims(token)
    access = claims.get("access")
    if not isinstance(access, list):
        return Proof(True, "credentials accepted (push scope requested; the token does not say "
                           "what it grants)")
    granted: set[str] = set()
    for entry in access:
        if isinstance(entry, dict) and entry.get("type") == "repository" and \
                entry.get("name") == repository:
            granted.update(a for a in entry.get("actions") or [] if isinstance(a, str))
    if "push" in granted or "*" in granted:
        return Proof(True, f"push to {repository} granted")
    what = ", ".join(sorted(granted)) or "nothing"
    return Proof(False, f"credentials accepted, but the token grants {what} on {repository}, "
                        "not push", hint="give this identity write access to the repository")
