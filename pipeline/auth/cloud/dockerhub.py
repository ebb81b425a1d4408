"""`type: dockerhub`: Docker Hub (`docker.io`), a user name and a personal access token.

From `username_env`/`password_env` (dispatcher), else DOCKERHUB_USERNAME + DOCKERHUB_TOKEN
when both are set, else the Docker config (`https://index.docker.io/v1/`), else anonymous.
"""

from __future__ import annotations

from pipeline.auth.cloud.common import NotConfigured
from pipeline.auth.credentials import Credentials
from pipeline.errors import UsageError
from pipeline.ui import redact

USERNAME_ENV = "DOCKERHUB_USERNAME"
PASSWORD_ENV = "DOCKERHUB_TOKEN"
HINT = (f"export {USERNAME_ENV} and {PASSWORD_ENV} (a personal or organization access token, "
        "not the account password), or run `docker login`")


def credentials(registry, env, *, cache=None) -> Credentials:
    username, token = env.get(USERNAME_ENV), env.get(PASSWORD_ENV)
    if username and token:
        redact.register_basic(username, token)
        names = f"{USERNAME_ENV}/{PASSWORD_ENV}"
        return Credentials(source=f"env {names}", username=username, password=token,
                           method=f"env {names}")
    if username or token:
        missing = PASSWORD_ENV if username else USERNAME_ENV
        present = USERNAME_ENV if username else PASSWORD_ENV
        raise UsageError(f"registry '{registry.name}': {present} is set but {missing} is not",
                         hint=f"export {missing}=... as well, or unset {present} to use your "
                              "Docker login")
    raise NotConfigured(f"{USERNAME_ENV}/{PASSWORD_ENV} are not set", hint=HINT)
