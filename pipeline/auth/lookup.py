"""The one lookup order: which credentials a registry gets, the way `docker push` would find
them, plus release.yml's env vars and each cloud's own login.

For a registry entry of release.yml (`credentials_for(entry)`, or `resolve(..., config=entry)`):
  1. `username_env` / `password_env` named in release.yml (any type; envvars.py);
  2. the type's own source (cloud/): dockerhub (DOCKERHUB_USERNAME/DOCKERHUB_TOKEN), ecr
     (GetAuthorizationToken via boto3, else the aws CLI), gcr (key_file, google-auth
     default credentials, else gcloud), acr (Entra ID token via azure-identity or az,
     exchanged for an ACR refresh token), ghcr (`token_env`, else GITHUB_TOKEN + GITHUB_ACTOR;
     GH_TOKEN only after an explicit `docker login ghcr.io`, see ghcr.py), gitlab
     (CI_REGISTRY_USER/CI_REGISTRY_PASSWORD or CI_JOB_TOKEN); generic has none;
  3. when step 2 found nothing to log in with: `DOCKER_AUTH_CONFIG`, then the Docker config
     (dockerconfig.py), as docker-py resolves it: the credential helper for the host
     (`credHelpers`), else the default store (`credsStore`), else `auths`;
  4. nothing: anonymous for generic, dockerhub, ghcr and gitlab (public images can be read);
     a UsageError saying what was tried for ecr, gcr and acr.
For a host that release.yml does not list (`resolve(name, host, None, None)`, e.g. the
registry of a base image): steps 1, 3 and 4 (anonymous).

A cloud that refuses (expired or revoked credentials, no permission, unreachable) raises
CloudAuthError (exit 1) instead of falling through: a stale Docker login would only hide it.
So does an SDK that fails in a way nobody foresaw (any other exception from boto3,
google-auth, azure-identity...): that registry fails with the exception's type and first
line, the others are unaffected (RELEASE_DEBUG=1 lets it through, for a traceback).

The result says where it came from (`source`, `method`), so an auth failure can name the
source without ever showing the secret; every secret is registered with `redact` the moment
it is read. Cloud tokens are cached in memory (cache.py); `refresh` forgets one and asks again.
"""

from __future__ import annotations

import os
from typing import Mapping

from pipeline.auth.cache import CACHE, TokenCache
from pipeline.auth.cloud import NEEDS_CREDENTIALS, adapter
from pipeline.auth.cloud.common import CloudAuthError, NotConfigured, utcnow
from pipeline.auth.credentials import ANONYMOUS, Credentials
from pipeline.auth.dockerconfig import from_docker
from pipeline.auth.envvars import from_env
from pipeline.errors import ReleaseError, UsageError
from pipeline.ui import redact

REFRESH_MARGIN = 300.0      # seconds: a token with less left is fetched again before a push


def resolve(registry_name: str, host: str, username_env: str | None, password_env: str | None,
            env: Mapping[str, str] | None = None, *, config=None, push: bool = False) -> Credentials:
    """Credentials for one registry. `config` (a release.yml RegistryConfig) brings its type's
    cloud login (credentials_for); `push` allows side effects a push needs (ECR create_repository)."""
    env = os.environ if env is None else env
    if config is not None:
        return credentials_for(config, env, push=push)
    if username_env or password_env:
        return from_env(registry_name, username_env, password_env, env)
    return from_docker(host, env) or ANONYMOUS


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
            try:
                prepare(registry, env)
            except ReleaseError:
                raise
            except Exception as exc:    # an SDK's surprise (see _resolve)
                if os.environ.get("RELEASE_DEBUG"):
                    raise
                raise unexpected_error(registry, exc, "preparing the push") from None
    return creds


def expiring(creds: Credentials, margin: float = REFRESH_MARGIN, now=None) -> bool:
    """Does `creds` expire within `margin` seconds (short-lived cloud tokens: Artifact
    Registry 1 h, ACR about 3 h)? False when its expiry is unknown or it does not expire."""
    if creds.expires_at is None:
        return False
    return (creds.expires_at - (now or utcnow())).total_seconds() < margin


def refresh(registry, creds: Credentials, env: Mapping[str, str] | None = None, *,
            cache: TokenCache = CACHE) -> Credentials:
    """Credentials for `registry` in place of `creds`, which are about to expire or which the
    registry just refused (401): the cached token is forgotten and its source asked again.
    Credentials that do not come from a cloud (env vars, the Docker config) come back equal;
    callers that retry once compare the password/token to see whether anything changed."""
    cache.discard(creds)
    return credentials_for(registry, env, cache=cache)


def _resolve(registry, env: Mapping[str, str], cache: TokenCache) -> Credentials:
    if registry.username_env or registry.password_env:
        return from_env(registry.name, registry.username_env, registry.password_env, env,
                        locations=getattr(registry, "key_locations", None))
    module = adapter(registry.type)
    try:
        return module.credentials(registry, env, cache=cache)
    except NotConfigured as missing:
        return _fallback(registry, env, missing)
    except ReleaseError:
        raise
    except Exception as exc:            # an SDK's surprise: this registry fails, not the run
        if os.environ.get("RELEASE_DEBUG"):
            raise
        raise unexpected_error(registry, exc) from None


def unexpected_error(registry, exc: BaseException, what: str = "getting credentials"
                     ) -> CloudAuthError:
    """CloudAuthError for an exception no adapter expected: its type and first line only."""
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    line = redact.redact(line if len(line) <= 200 else line[:200] + "...")
    return CloudAuthError(
        f"registry '{registry.name}' ({registry.type}): unexpected error while {what}: "
        f"{type(exc).__name__}" + (f": {line}" if line else ""),
        hint="re-run with RELEASE_DEBUG=1 for a traceback and report it; meanwhile "
             "username_env/password_env or a Docker login avoid the cloud SDK")


def _fallback(registry, env: Mapping[str, str], missing: NotConfigured) -> Credentials:
    found = from_docker(registry.registry, env)
    if found is not None:
        return found
    if registry.type in NEEDS_CREDENTIALS:
        raise UsageError(f"registry '{registry.name}' ({registry.type}, {registry.registry}): "
                         f"{missing.message}; no Docker login for {registry.registry} either",
                         hint=missing.hint) from None
    return Credentials(source="anonymous", method="anonymous",
                       note=missing.message + (f"; {missing.hint}" if missing.hint else ""))
