"""Find the credentials for one registry, the way `docker push` would, plus release.yml env vars.

Order: the env vars named in release.yml (`username_env`/`password_env`), then
`DOCKER_AUTH_CONFIG`, then the Docker config (`credHelpers`, `credsStore`,
`auths`, as docker-py resolves them). The result says where it came from, so an
auth failure can name the source without ever showing the secret.

With a release.yml registry entry (`resolve(..., config=entry)`), the registry's
type decides: the cloud adapters in pipeline/auth/cloud/ (ECR, Artifact Registry, ACR,
GHCR, GitLab, Docker Hub) come between the explicit env vars and the Docker config.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from pipeline.ui import redact
from pipeline.errors import UsageError


@dataclass(frozen=True)
class Credentials:
    source: str                      # e.g. "env LOCAL_USER/LOCAL_PASS", "docker config", "anonymous"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)
    method: str | None = None          # short: "env U/P", "Docker config", "boto3", "gcloud CLI"...
    expires_at: datetime | None = None  # timezone-aware; None when unknown or not expiring
    principal: str | None = None       # who, beyond the user name (a service account, a role)
    note: str | None = None            # why anonymous / what else to try (never a secret)

    @property
    def identity(self) -> str:
        """User name and principal, never a secret ("-" when anonymous)."""
        parts = [p for p in (self.username, f"({self.principal})" if self.principal else None) if p]
        return " ".join(parts) or ("-" if self.anonymous else "(token)")

    @property
    def anonymous(self) -> bool:
        return not (self.password or self.identity_token or self.registry_token)

    def auth_config(self, server: str) -> dict | None:
        """The dict docker-py sends as X-Registry-Auth for this registry."""
        if self.anonymous:
            return None
        config = {"serveraddress": server}
        if self.username:
            config["username"] = self.username
        if self.password:
            config["password"] = self.password
        if self.identity_token:
            config["identitytoken"] = self.identity_token
        if self.registry_token:
            config["registrytoken"] = self.registry_token
        return config

    def describe(self) -> str:
        who = f"user '{self.username}'" if self.username else "no user"
        if self.anonymous:
            return "anonymous (no credentials found" + (f": {self.note})" if self.note else ")")
        return f"{who} from {self.source}"


ANONYMOUS = Credentials(source="anonymous", method="anonymous")


def from_env(registry_name: str, username_env: str | None, password_env: str | None,
             env: Mapping[str, str], *, locations: Mapping[str, str] | None = None
             ) -> Credentials:
    """The user name and password from the env vars release.yml names. `locations` maps
    "username_env"/"password_env" to where release.yml says so (FILE:LINE:COL)."""
    missing = [(key, name) for key, name in (("username_env", username_env),
                                             ("password_env", password_env))
               if name and not env.get(name)]
    if missing:
        raise unset_env_error(registry_name, missing, env, locations,
                              remedy="or remove username_env/password_env from release.yml "
                                     "to use your Docker login")
    username = env.get(username_env) if username_env else None
    password = env.get(password_env) if password_env else None
    redact.register_basic(username, password)
    names = "/".join(n for n in (username_env, password_env) if n)
    return Credentials(source=f"env {names}", username=username, password=password,
                       method=f"env {names}")


def unset_env_error(registry_name: str, missing: list[tuple[str, str]], env: Mapping[str, str],
                    locations: Mapping[str, str] | None = None, *, remedy: str) -> UsageError:
    """"environment variable X is not set", naming the release.yml key (and where it is) that
    names X, and X itself only when it looks like a variable name: a secret typed where the
    name belongs is never shown (config.env_name_is_plausible)."""
    from pipeline.model.config.loader import env_name_is_plausible

    locations = locations or {}
    shown = [name for _, name in missing if env_name_is_plausible(name, env)]
    where = " and ".join(f"{key} at {locations[key]}" if key in locations else key
                         for key, _ in missing)
    hidden = len(shown) < len(missing)
    if not hidden:
        noun = "variable" if len(missing) == 1 else "variables"
        verb = "is" if len(missing) == 1 else "are"
        message = (f"registry '{registry_name}': environment {noun} {' and '.join(shown)} "
                   f"{verb} not set (named by {where})")
        hint = f"export {shown[0]}=... before running, {remedy}"
    else:
        message = (f"registry '{registry_name}': the environment variable named by {where} "
                   f"is not set (its name is not shown: it looks like a secret, not a "
                   f"variable name)")
        hint = ("write the variable's NAME there, not the secret itself, and export it; "
                f"{remedy.removeprefix('or ')}")
    return UsageError(message, hint=hint)


def from_docker_auth_config(host: str, env: Mapping[str, str]) -> Credentials | None:
    raw = env.get("DOCKER_AUTH_CONFIG")
    if not raw:
        return None
    shape = '{"auths": {"HOST": {"auth": "<base64 user:password>"}}}'
    try:
        auths = json.loads(raw).get("auths", {})
    except (ValueError, AttributeError):
        raise UsageError("DOCKER_AUTH_CONFIG is not valid JSON", hint=f"expected {shape}") from None
    if not isinstance(auths, dict):
        raise UsageError("DOCKER_AUTH_CONFIG: \"auths\" must be an object", hint=f"expected {shape}")
    from pipeline.auth.dockerconfig import auth_candidates

    for key, entry in auth_candidates(auths, host):
        if not isinstance(entry, dict):
            raise UsageError(f"DOCKER_AUTH_CONFIG: the entry for {key} must be an object",
                             hint=f"expected {shape}")
        found = _entry_to_credentials(entry, "DOCKER_AUTH_CONFIG")
        if found is not None:
            return found
    return None


def _entry_to_credentials(entry: Mapping, source: str) -> Credentials | None:
    # docker-py returns lower-case keys from `auths`, capitalised ones from helpers.
    lowered = {k.lower(): v for k, v in entry.items()}
    username, password = lowered.get("username"), lowered.get("password")
    if not password and lowered.get("auth"):
        try:
            username, _, password = base64.b64decode(lowered["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
    identity = lowered.get("identitytoken")
    if username == "<token>" and password and not identity:
        identity, username, password = password, None, None
    registry_token = lowered.get("registrytoken")
    if not (password or identity or registry_token):
        return None
    redact.register_basic(username, password)
    redact.register(identity)
    redact.register(registry_token)
    return Credentials(source=source, username=username, password=password,
                       identity_token=identity, registry_token=registry_token, method=source)


def from_docker_config(host: str, env: Mapping[str, str]) -> Credentials | None:
    """The Docker CLI's credentials for `host` (credHelpers -> credsStore -> auths)."""
    import subprocess

    from pipeline.auth.dockerconfig import lookup

    try:
        found = lookup(host, env)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"could not read Docker credentials for {host}: {redact.redact(str(exc))}",
                         hint="check ~/.docker/config.json and its credential helper") from None
    if found is None:
        return None
    entry, source = found
    return _entry_to_credentials(entry, source)


def from_docker(host: str, env: Mapping[str, str]) -> Credentials | None:
    """`DOCKER_AUTH_CONFIG`, then the Docker config (helpers, `auths`); None if neither has `host`."""
    return from_docker_auth_config(host, env) or from_docker_config(host, env)


def resolve(registry_name: str, host: str, username_env: str | None, password_env: str | None,
            env: Mapping[str, str] | None = None, *, config=None, push: bool = False) -> Credentials:
    """Credentials for one registry. `config` (a release.yml RegistryConfig) brings its type's
    cloud login (pipeline/auth/cloud); `push` allows side effects a push needs (ECR create_repository)."""
    env = os.environ if env is None else env
    if config is not None:
        from pipeline.auth.cloud import credentials_for  # lazy: cloud SDKs stay out of `release --help`
        return credentials_for(config, env, push=push)
    if username_env or password_env:
        return from_env(registry_name, username_env, password_env, env)
    return (from_docker_auth_config(host, env)
            or from_docker_config(host, env)
            or ANONYMOUS)
