"""Credentials from the environment variables release.yml names (`username_env`/`password_env`,
ghcr's `token_env`), and the error for one that is not set.

Step 1 of the lookup order (pipeline/auth/lookup.py). A name is shown in a message only when it
looks like one: a secret typed where the name belongs never is (env_name_is_plausible).
"""

from __future__ import annotations

from typing import Mapping

from pipeline.auth.credentials import Credentials
from pipeline.errors import UsageError
from pipeline.model.config.checks import env_name_is_plausible
from pipeline.ui import redact


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
    name belongs is never shown (env_name_is_plausible)."""
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


def env_value(env: Mapping[str, str], name: str, registry_name: str, key: str,
              location: str | None = None) -> str:
    """The value of an env var that release.yml names explicitly (with `key`, at `location`
    FILE:LINE:COL): it must be set. The name is shown only if it looks like one."""
    value = env.get(name)
    if not value:
        raise unset_env_error(registry_name, [(key, name)], env,
                              {key: location} if location else None,
                              remedy=f"or remove {key} from release.yml")
    return value
