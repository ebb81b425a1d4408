"""Checks of single values in release.yml, and the hints its error messages give.

check_repository (a repository path or local image name), env_name_is_plausible (may a `*_env`
value be shown?), and the helpers behind the loader's hints: did-you-mean, unknown keys, empty
values. Registry hosts are checked in hosts.py.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Iterable, Mapping

from yaml.nodes import Node, ScalarNode

from pipeline.model.build_options import OptionError, check_env_name
from pipeline.model.config.keys import (
    IMAGE_KEYS,
    MAX_REPOSITORY_LENGTH,
    REGISTRY_KEYS,
    REPOSITORY_PATTERN,
    RETRY_KEYS,
)
from pipeline.model.config.yamlpos import TAG_NULL

_REPOSITORY_RE = re.compile(REPOSITORY_PATTERN)
_TOKEN_RUN_RE = re.compile(r"[A-Za-z0-9]{20,}")
_SECRET_KEY_RE = re.compile(
    r"passw(?:or)?d|token|secret|credential|api[_-]?key|private[_-]?key|^pass$|^pwd$|^auth$",
    re.IGNORECASE,
)

SECRET_HINT = "put the secret in an environment variable and name it with password_env"
ENV_KEY_HINTS = {
    "username_env": "put the user name in an environment variable and name it with "
                    "username_env",
    "password_env": SECRET_HINT,
    "token_env": SECRET_HINT.replace("password_env", "token_env"),
    "env": "write the variable's NAME, e.g. env: NPM_TOKEN",
}
ENV_NAME_RULE = ("a name is letters, digits and '_', not starting with a digit; one that mixes "
                 "upper and lower case with digits, or has 20 letters and digits in a row, "
                 "counts as a secret unless such a variable is set")
QUOTE_HINT = "quote the value to make it a string"
NOT_FOUND_HINT = "create one (see README: release.yml reference) or pass -c PATH"

REQUIRED_HINTS = {
    "image": "add an image: section with at least `name: myapp`",
    "registries": "add a registries: list with at least one `- name: ..., registry: ..., "
                  "repository: ...` entry",
    "image.name": "add `name: myapp` (the local image name) under image:",
    "name": "give the registry a unique name, e.g. `name: local`",
    "registry": "add the registry host, e.g. `registry: localhost:5000`",
    "repository": "add the repository path, e.g. `repository: team/myapp`",
}


# ---------------------------------------------------------------------------- values


_KNOWN_REGISTRY_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", "ghcr.io",
                         "quay.io", "gcr.io", "registry.gitlab.com", "mcr.microsoft.com")
_KNOWN_REGISTRY_SUFFIXES = (".gcr.io", ".pkg.dev", ".amazonaws.com", ".azurecr.io")


def check_repository(text: str, *, host: str | None = None, local: bool = False
                     ) -> tuple[str, str] | None:
    """None if `text` is a valid distribution repository name, else (problem, hint).

    `host` is the registry the repository belongs to; `local` means a local image name."""
    if len(text) > MAX_REPOSITORY_LENGTH:
        return (f"longer than {MAX_REPOSITORY_LENGTH} characters",
                "shorten the repository path")
    first, _, rest = text.partition("/")
    if rest and (first in (host, (host or "").split(":")[0], "localhost") or ":" in first
                 or first.lower() in _KNOWN_REGISTRY_HOSTS
                 or first.lower().endswith(_KNOWN_REGISTRY_SUFFIXES)):
        if local:
            return ("it starts with a registry host",
                    "image.name is the local image name; registry hosts go in registries:")
        return ("it starts with a registry host",
                f"put the host in registry: and only the path in repository: "
                f"(repository: {rest})")
    if "@" in text or ":" in text:
        return ("it contains a tag or digest",
                "write the repository without ':tag' or '@digest'; tags come from tags:")
    if text != text.lower():
        example = f" (e.g. {text.lower()})" if _REPOSITORY_RE.match(text.lower()) else ""
        return ("it contains upper-case letters",
                f"repository names must be lower-case{example}")
    if text.startswith("/") or text.endswith("/") or "//" in text:
        return ("empty path component",
                "path components are separated by single '/', with none at either end")
    if not _REPOSITORY_RE.match(text):
        return ("each path component must be lower-case letters and digits, separated by "
                "'.', '_', '__' or '-'",
                "e.g. team/my-app; components cannot start or end with a separator")
    return None


def env_name_is_plausible(name: str, env: Mapping[str, str] | None = None) -> bool:
    """May `name`, written where the NAME of an environment variable belongs (`*_env`), be
    shown in a message? Not when it may be the secret itself: it must be a variable name
    ([A-Za-z_][A-Za-z0-9_]*, buildkit.options.check_env_name), and, unless a variable of that
    name is set in `env` (os.environ), it must not look like a generated token: mixing upper-
    and lower-case letters with digits (`hunter2Xq9TzLw0rdS3cret`, `ghp_...`), or 20 letters
    and digits in a row holding both (`AKIAIOSFODNN7EXAMPLE`, hex digests)."""
    try:
        check_env_name(name)
    except OptionError:
        return False
    if name in (os.environ if env is None else env):
        return True   # the user's own variable, in the user's own casing
    if (any(c.isupper() for c in name) and any(c.islower() for c in name)
            and any(c.isdigit() for c in name)):
        return False
    return not any(any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
                   for run in _TOKEN_RUN_RE.findall(name))


# ---------------------------------------------------------------------------- hints


def join_key(where: str, key: str) -> str:
    """"retry" + "attempts" -> "retry.attempts"; a top-level key stays as it is."""
    return f"{where}.{key}" if where else key


def looks_secret(key: str) -> bool:
    """Does an unknown key look like it holds a secret (its value is then never shown)?"""
    return not key.lower().endswith("_env") and bool(_SECRET_KEY_RE.search(key))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """"did you mean 'X'?" for the choice `word` differs from only in case or by a typo."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


_SECTION_OF = {
    **{k: "retry" for k in RETRY_KEYS},
    **{k: "an entry of registries" for k in REGISTRY_KEYS},
    **{k: "image" for k in IMAGE_KEYS},
}

_ALIASES = {
    "host": "registry", "url": "registry", "server": "registry", "repo": "repository",
    "image": "repository", "ca": "ca_file", "cacert": "ca_file", "ca_cert": "ca_file",
    "tls_verify": "insecure", "skip_tls_verify": "insecure", "file": "dockerfile",
    "args": "build_args", "stage": "target", "retries": "attempts", "delay": "max_delay",
}


def unknown_key_hint(key: str, where: str, known: tuple[str, ...]) -> str:
    """The hint for an unknown `key` in the mapping at `where` whose keys are `known`."""
    if key in ("username", "user") and "username_env" in known:
        return "put the user name in an environment variable and name it with username_env"
    if where == "" and key in _SECTION_OF:
        return f"'{key}' belongs under {_SECTION_OF[key]}:"
    hint = did_you_mean(key, known)
    if hint:
        return hint
    if _ALIASES.get(key.lower()) in known:
        return f"did you mean '{_ALIASES[key.lower()]}'?"
    return f"known keys: {', '.join(known)}"


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == TAG_NULL


def null_hint(node: Node) -> str | None:
    if is_null(node):
        return "the value is empty: give it a value, or remove the key to leave it unset"
    return None
