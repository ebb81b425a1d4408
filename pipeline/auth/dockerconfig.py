"""The Docker CLI's own credentials: read them (`lookup`, `from_docker`) and, on request, store
and erase them.

`lookup` resolves a host as docker-py and the docker CLI do, without importing docker-py (it
costs more than a whole no-op release); where the Docker config comes in the lookup order, and
its own order (`credHelpers`, `credsStore`, `auths`), are in pipeline/auth/lookup.py.
`from_docker` adds `DOCKER_AUTH_CONFIG` in front and answers with Credentials.

`store` (`release login --docker-config`) writes where `docker login` would, in the same order:
the credential helper for the host, else the default store, else `auths` in
$DOCKER_CONFIG/config.json (~/.docker/config.json) as base64 `user:password` (file mode 0600).
Docker Hub's key is `https://index.docker.io/v1/`. A host served by docker-credential-ecr-login
(which gets its own tokens and stores nothing) is left alone. A config.json that is a symlink (a
dotfiles repository, a mounted secret) stays one: the file it points to is rewritten, as
`docker login` does.

`erase` (`release logout`) removes what `store` wrote: the helper's entry (`erase`) or the
`auths` entry.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

from pipeline.auth.cloud.common import which
from pipeline.auth.credentials import Credentials
from pipeline.errors import UsageError
from pipeline.ui import redact

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
SELF_SERVING_HELPERS = {"ecr-login", "gcr", "gcloud", "acr-env"}


def config_path(env: Mapping[str, str]) -> Path:
    directory = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(directory) / "config.json"


def server_key(host: str) -> str:
    return DOCKER_HUB_KEY if host in ("docker.io", "index.docker.io", "registry-1.docker.io") \
        else host


def _hostname(key: str) -> str:
    """An `auths` key as a host: scheme and path dropped, Docker Hub's names as docker.io."""
    name = key.replace("http://", "").replace("https://", "").split("/", 1)[0]
    return "docker.io" if name in ("index.docker.io", "registry-1.docker.io") else name


def lookup(host: str, env: Mapping[str, str]) -> tuple[dict, str] | None:
    """(entry, source) for `host` from the Docker config, or None when it has nothing for it.

    An entry has docker-py's keys (auth / username / password / identitytoken, any case).
    Raises RuntimeError naming the file or helper when either is broken.
    """
    path = config_path(env)
    config = _read(path)
    if not config:
        return None
    key = server_key(host)
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(key) or helpers.get(host) or config.get("credsStore")
    if helper:
        found = _helper_get(helper, key, env)
        if found is not None:
            return found, f"credential helper docker-credential-{helper}"
    auths = config.get("auths")
    if not auths and not helpers and not config.get("credsStore"):
        auths = config                          # the legacy layout: hosts at the top level
    if not isinstance(auths, dict):
        return None
    entry = next((e for _, e in auth_candidates(auths, host) if _usable(e)), None)
    return (entry, "Docker config") if entry is not None else None


def auth_candidates(auths: dict, host: str):
    """(key, entry) of an `auths` object that name `host`, in docker-py's order: the exact
    keys first (Docker Hub's is https://index.docker.io/v1/), then any key for that host."""
    key = server_key(host)
    exact = [name for name in dict.fromkeys((key, host)) if name in auths]
    for name in exact:
        yield name, auths[name]
    wanted = _hostname(key)
    for name, entry in auths.items():
        if name not in exact and _hostname(name) == wanted:
            yield name, entry


def _usable(entry) -> bool:
    """An `auths` entry that holds a credential (an empty one does not end the search)."""
    return isinstance(entry, dict) and any(
        value and str(name).lower() in ("auth", "password", "identitytoken", "registrytoken")
        for name, value in entry.items())


def _helper_get(helper: str, key: str, env: Mapping[str, str]) -> dict | None:
    name = f"docker-credential-{helper}"
    env = {**os.environ, **env}                 # the helper may need HOME, DBUS_*, PATH, ...
    binary = which(name, env)
    if binary is None:
        raise RuntimeError(f"{name} (credsStore/credHelpers in the Docker config) is not on PATH")
    proc = subprocess.run([binary, "get"], input=key, capture_output=True, text=True,
                          timeout=60, env=env)
    out = proc.stdout.strip()
    if proc.returncode != 0:
        if "credentials not found" in out.lower() or "credentials not found" in proc.stderr.lower():
            return None
        message = redact.redact((out + "\n" + proc.stderr).strip().splitlines()[-1]
                                if (out + proc.stderr).strip() else "no message")
        raise RuntimeError(f"{name} get failed (exit {proc.returncode}): {message}")
    try:
        data = json.loads(out)
    except ValueError:
        raise RuntimeError(f"{name} get did not answer with JSON") from None
    if not isinstance(data, dict) or not data.get("Secret"):
        return None
    username, secret = data.get("Username") or "", data["Secret"]
    redact.register(secret)
    if username == "<token>":
        return {"IdentityToken": secret}
    return {"Username": username, "Password": secret}


def from_docker_auth_config(host: str, env: Mapping[str, str]) -> Credentials | None:
    """What `DOCKER_AUTH_CONFIG` (a config.json's `auths` in a variable, as CI systems set it)
    holds for `host`; None when it is unset or has nothing for `host`."""
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


def store(host: str, creds: Credentials, env: Mapping[str, str]) -> str:
    """Store `creds` for `host`; returns where (for the report). Raises OSError/RuntimeError."""
    if creds.anonymous:
        return "nothing to store (anonymous)"
    path = config_path(env)
    config = _read(path)
    key = server_key(host)
    helper = (config.get("credHelpers") or {}).get(host) or (config.get("credHelpers") or {}).get(key) \
        or config.get("credsStore")
    if helper:
        if helper in SELF_SERVING_HELPERS:
            return f"left to docker-credential-{helper} (it gets its own tokens)"
        _helper_store(helper, key, creds, env)
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    if creds.identity_token and not creds.password:
        entry = {"identitytoken": creds.identity_token}
    else:
        pair = f"{creds.username or ''}:{creds.password}"
        entry = {"auth": base64.b64encode(pair.encode()).decode()}
        redact.register(entry["auth"])
    auths[key] = entry
    _write(path, config)
    return str(path)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}
    except ValueError:
        raise RuntimeError(f"{path} is not valid JSON; fix or remove it first") from None
    if not isinstance(data, dict):
        raise RuntimeError(f"{path} is not a JSON object")
    return data


def erase(host: str, env: Mapping[str, str]) -> list[str]:
    """Remove the credentials stored for `host` (what `store` wrote); what was removed, as
    lines for the report ([] when nothing was stored). Raises OSError/RuntimeError."""
    path = config_path(env)
    config = _read(path)
    if not config:
        return []
    key = server_key(host)
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(host) or helpers.get(key) or config.get("credsStore")
    removed = []
    if helper and helper not in SELF_SERVING_HELPERS:
        if _helper_get(helper, key, env) is not None:
            _helper_erase(helper, key, env)
            removed.append(f"{key} from docker-credential-{helper}")
    auths = config.get("auths")
    if isinstance(auths, dict):
        keys = [k for k in dict.fromkeys((key, host)) if k in auths]
        for k in keys:
            entry = auths.pop(k)
            if _usable(entry):
                removed.append(f"{k} from {path}")
        if keys:
            _write(path, config)
    return removed


def _helper_erase(helper: str, key: str, env: Mapping[str, str]) -> None:
    name = f"docker-credential-{helper}"
    env = {**os.environ, **env}
    binary = which(name, env)
    if binary is None:
        raise RuntimeError(f"{name} (credsStore/credHelpers in the Docker config) is not on PATH")
    proc = subprocess.run([binary, "erase"], input=key, capture_output=True, text=True,
                          timeout=60, env=env)
    output = (proc.stdout + "\n" + proc.stderr).strip()
    if proc.returncode != 0 and "credentials not found" not in output.lower():
        message = redact.redact(output.splitlines()[-1] if output else "no message")
        raise RuntimeError(f"{name} erase failed (exit {proc.returncode}): {message}")


def _write(path: Path, config: dict) -> None:
    """Replace `path` atomically (a temporary file in the same directory, then rename); when
    `path` is a symlink, the file it points to is replaced and the link kept."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(config, out, indent="\t")
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _helper_store(helper: str, key: str, creds: Credentials, env: Mapping[str, str]) -> None:
    name = f"docker-credential-{helper}"
    binary = which(name, env)
    if binary is None:
        raise RuntimeError(f"{name} (credsStore/credHelpers in the Docker config) is not on PATH")
    if creds.identity_token and not creds.password:
        payload = {"ServerURL": key, "Username": "<token>", "Secret": creds.identity_token}
    else:
        payload = {"ServerURL": key, "Username": creds.username or "", "Secret": creds.password}
    proc = subprocess.run([binary, "store"], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=60, env=dict(env))
    if proc.returncode != 0:
        message = redact.redact((proc.stdout + proc.stderr).strip().splitlines()[-1:][0]
                                if (proc.stdout + proc.stderr).strip() else "no message")
        raise RuntimeError(f"{name} store failed (exit {proc.returncode}): {message}")
