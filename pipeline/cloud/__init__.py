"""Cloud login adapters: credentials for each registry type from what the machine already has.

    creds = credentials_for(registry_config, os.environ)   # -> pipeline.credentials.Credentials

Per registry, in order:
  1. `username_env` / `password_env` named in release.yml (any type);
  2. the type's own source: dockerhub (DOCKERHUB_USERNAME/DOCKERHUB_TOKEN), ecr
     (GetAuthorizationToken via boto3, else the aws CLI), gcr (key_file, google-auth
     default credentials, else gcloud), acr (Entra ID token via azure-identity or az,
     exchanged for an ACR refresh token), ghcr (GITHUB_TOKEN + GITHUB_ACTOR), gitlab
     (CI_REGISTRY_USER/CI_REGISTRY_PASSWORD or CI_JOB_TOKEN); generic has none;
  3. `DOCKER_AUTH_CONFIG`, then the Docker config (credential helpers, `auths`), when step 2
     found nothing to log in with;
  4. nothing: anonymous for generic, dockerhub, ghcr and gitlab (public images can be read);
     a UsageError saying what was tried for ecr, gcr and acr.

A cloud that refuses (expired or revoked credentials, no permission, unreachable) raises
CloudAuthError (exit 1) instead of falling through: a stale Docker login would only hide it.
Every secret is registered with `redact` the moment it is read. Cloud SDKs are imported
inside the adapters, never at start-up. Tokens are cached in memory (cache.py).
"""

from __future__ import annotations

import importlib
import os
from typing import Mapping

from .. import credentials as creds_mod
from ..credentials import Credentials
from ..errors import UsageError
from .cache import CACHE, TokenCache
from .common import CloudAuthError, NotConfigured

__all__ = ["credentials_for", "CloudAuthError", "NotConfigured", "CACHE", "ADAPTERS"]

ADAPTERS = {
    "generic": "generic",
    "dockerhub": "dockerhub",
    "ecr": "ecr",
    "gcr": "gcr",
    "acr": "acr",
    "ghcr": "ghcr",
    "gitlab": "gitlab",
}

# Types whose registries never serve anyone without credentials (push or pull).
NEEDS_CREDENTIALS = frozenset({"ecr", "gcr", "acr"})


def adapter(registry_type: str):
    try:
        name = ADAPTERS[registry_type]
    except KeyError:
        raise UsageError(f"unknown registry type {registry_type!r}",
                         hint=f"one of: {', '.join(ADAPTERS)}") from None
    return importlib.import_module(f"{__name__}.{name}")


def credentials_for(registry, env: Mapping[str, str] | None = None, *, push: bool = False,
                    cache: TokenCache = CACHE) -> Credentials:
    """Credentials for a release.yml registry entry (see the module docstring for the order).

    `push`: the caller is about to push, so side effects a push needs are allowed
    (ECR `create_repository: true`).
    """
    env = os.environ if env is None else env
    creds = _resolve(registry, env, cache)
    if push and not creds.anonymous:
        prepare = getattr(adapter(registry.type), "prepare_push", None)
        if prepare is not None:
            prepare(registry, env)
    return creds


def _resolve(registry, env: Mapping[str, str], cache: TokenCache) -> Credentials:
    if registry.username_env or registry.password_env:
        return creds_mod.from_env(registry.name, registry.username_env, registry.password_env, env,
                                  locations=getattr(registry, "key_locations", None))
    module = adapter(registry.type)
    try:
        return module.credentials(registry, env, cache=cache)
    except NotConfigured as missing:
        found = creds_mod.from_docker(registry.registry, env)
        if found is not None:
            return found
        if registry.type in NEEDS_CREDENTIALS:
            raise UsageError(f"registry '{registry.name}' ({registry.type}, {registry.registry}): "
                             f"{missing.message}; no Docker login for {registry.registry} either",
                             hint=missing.hint) from None
        return Credentials(source="anonymous", method="anonymous",
                           note=missing.message + (f"; {missing.hint}" if missing.hint else ""))
