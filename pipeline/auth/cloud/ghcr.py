"""`type: ghcr`: GitHub Container Registry (`ghcr.io`).

In order:
  1. the env var named by `token_env` in release.yml (or username_env/password_env);
  2. GITHUB_TOKEN (GitHub Actions: `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` and
     `permissions: packages: write`; elsewhere a classic personal access token with
     write:packages that you exported on purpose);
  3. an explicit `docker login ghcr.io`: DOCKER_AUTH_CONFIG, then the Docker config
     (credential helpers, `auths`);
  4. GH_TOKEN, the gh CLI's token: it usually lacks write:packages, so a Docker login wins;
  5. anonymous (public packages can be pulled).
With a token from the environment the user name is GITHUB_ACTOR (a default variable in
Actions), else GITHUB_REPOSITORY_OWNER.
"""

from __future__ import annotations

from pipeline.auth.cloud.common import NotConfigured
from pipeline.auth.credentials import Credentials
from pipeline.auth.dockerconfig import from_docker
from pipeline.auth.envvars import env_value
from pipeline.errors import UsageError
from pipeline.ui import redact

TOKEN_ENVS = ("GITHUB_TOKEN", "GH_TOKEN")
GH_CLI_TOKEN = "GH_TOKEN"           # ranks below an explicit `docker login ghcr.io`
USER_ENVS = ("GITHUB_ACTOR", "GITHUB_REPOSITORY_OWNER")
HINT = ("in GitHub Actions add `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` and "
        "`permissions: packages: write`; elsewhere export GITHUB_TOKEN (a classic PAT with "
        "write:packages) and GITHUB_ACTOR, or run `docker login ghcr.io`")


def credentials(registry, env, *, cache=None) -> Credentials:
    if registry.token_env:
        where = getattr(registry, "key_locations", {}).get("token_env")
        token_name, token = registry.token_env, env_value(env, registry.token_env, registry.name,
                                                          "token_env", where)
    else:
        token_name = next((n for n in TOKEN_ENVS if env.get(n)), None)
        if token_name is None:
            raise NotConfigured(f"{' / '.join(TOKEN_ENVS)} not set", hint=HINT)
        if token_name == GH_CLI_TOKEN:
            docker_login = from_docker(registry.registry, env)
            if docker_login is not None:
                return docker_login
        token = env[token_name]
    redact.register(token)
    user_name = next((n for n in USER_ENVS if env.get(n)), None)
    if user_name is None:
        raise UsageError(f"registry '{registry.name}': {token_name} is set but GITHUB_ACTOR "
                         f"(the GitHub user name) is not",
                         hint="export GITHUB_ACTOR=<your GitHub user name>, or use "
                              "username_env/password_env")
    username = env[user_name]
    redact.register_basic(username, token)
    return Credentials(source=f"env {user_name}/{token_name}", username=username, password=token,
                       method=f"env {token_name}")
