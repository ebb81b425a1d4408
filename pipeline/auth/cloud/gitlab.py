"""`type: gitlab`: GitLab's container registry (registry.gitlab.com or `$CI_REGISTRY`).

In a GitLab CI job: CI_REGISTRY_USER + CI_REGISTRY_PASSWORD, else CI_REGISTRY_USER (or
gitlab-ci-token) + CI_JOB_TOKEN, else a deploy token (CI_DEPLOY_USER +
CI_DEPLOY_PASSWORD), when the job's CI_REGISTRY is this registry. Elsewhere the Docker
config (`docker login` with a token that has read_registry + write_registry), else
anonymous.
"""

from __future__ import annotations

from pipeline.auth.cloud.common import NotConfigured
from pipeline.auth.credentials import Credentials
from pipeline.ui import redact

HINT = ("in GitLab CI the job's CI_REGISTRY_USER/CI_REGISTRY_PASSWORD are used; elsewhere run "
        "`docker login <registry>` with a token that has read_registry and write_registry, or "
        "set username_env/password_env")
JOB_TOKEN_USER = "gitlab-ci-token"


def _host(value: str) -> str:
    return value.lower().removeprefix("https://").removeprefix("http://").rstrip("/")


def credentials(registry, env, *, cache=None) -> Credentials:
    ci_registry = env.get("CI_REGISTRY")
    if ci_registry and _host(ci_registry) != _host(registry.registry):
        raise NotConfigured(f"this job's CI_REGISTRY is {ci_registry}, not {registry.registry}, "
                            "so its job credentials do not apply", hint=HINT)
    user, password = env.get("CI_REGISTRY_USER"), env.get("CI_REGISTRY_PASSWORD")
    if user and password:
        return _creds("CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD", user, password)
    token = env.get("CI_JOB_TOKEN")
    if token:
        return _creds("CI_REGISTRY_USER" if user else None, "CI_JOB_TOKEN", user or JOB_TOKEN_USER,
                      token)
    user, password = env.get("CI_DEPLOY_USER"), env.get("CI_DEPLOY_PASSWORD")
    if user and password:
        return _creds("CI_DEPLOY_USER", "CI_DEPLOY_PASSWORD", user, password)
    raise NotConfigured("not in a GitLab CI job (CI_REGISTRY_USER/CI_REGISTRY_PASSWORD and "
                        "CI_JOB_TOKEN are not set)", hint=HINT)


def _creds(user_env: str | None, secret_env: str, username: str, secret: str) -> Credentials:
    redact.register_basic(username, secret)
    names = "/".join(n for n in (user_env, secret_env) if n)
    return Credentials(source=f"env {names}", username=username, password=secret,
                       method=f"env {secret_env}")
