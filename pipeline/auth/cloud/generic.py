"""`type: generic`: any Docker Registry HTTP API v2 (Harbor, Quay, Nexus, distribution, ...).

No source of its own: `username_env`/`password_env` from release.yml (handled by the
dispatcher), else `DOCKER_AUTH_CONFIG` and the Docker config, else anonymous.
"""

from __future__ import annotations

from pipeline.auth.cloud.common import NotConfigured


def credentials(registry, env, *, cache=None):
    raise NotConfigured("no username_env/password_env in release.yml",
                        hint=f"set username_env/password_env for '{registry.name}' in release.yml, "
                             f"or run `docker login {registry.registry}`")
