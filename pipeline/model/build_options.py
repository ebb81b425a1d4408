"""What release.yml says about how to build: the builder, build secrets, cache sources and sinks.

Pure: parsing and checking only. The engine and CLI ways in (engine_build.py, cli_build.py)
and the choice between them (choose.py) use these.

Cache entries come in two forms:
  * an image reference (`registry.example.com/team/app:latest`): the image's inline cache
    metadata is imported (every image `release` builds with BuildKit carries it). The
    engine's built-in BuildKit can use these.
  * a buildx cache spec, `type=registry|gha|local|s3|azblob|inline,...`, exactly as
    `docker buildx build --cache-from/--cache-to` takes it. These need `docker buildx`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError, ValueProblem
from pipeline.registry.reference import parse_reference

BUILDERS = ("auto", "buildkit", "classic")
DEFAULT_BUILDER = "auto"
CACHE_TYPES = ("registry", "gha", "local", "s3", "azblob", "inline")
# cache spec attributes that hold credentials (buildx: s3, azblob, gha); refused, never echoed
CREDENTIAL_KEYS = ("token", "secret_access_key", "access_key_id", "session_token",
                   "account_key", "password")
SECRET_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class OptionError(ValueProblem):
    """A bad builder option. The message never echoes a value that could be a secret."""


@dataclass(frozen=True)
class BuildSecret:
    """`RUN --mount=type=secret,id=ID` gets the value of env var `env`, or the file `file`."""
    id: str
    env: str | None = None          # the NAME of an environment variable, never its value
    file: Path | None = None        # absolute


@dataclass(frozen=True)
class CacheEntry:
    text: str                       # as written
    type: str                       # "image" for a plain reference, else the buildx type
    ref: str | None = None          # the image (type image) or `ref=` of type registry

    @property
    def needs_buildx(self) -> bool:
        return self.type not in ("image", "inline")


def parse_cache_entry(text: str, *, sink: bool) -> CacheEntry:
    """One `cache_from` (sink=False) or `cache_to` (sink=True) entry."""
    text = text.strip()
    where = "cache_to" if sink else "cache_from"
    if not text:
        raise OptionError(f"{where} entries must not be empty")
    if "=" in text:                  # an image reference never has one
        attrs = _attrs(text, where)
        kind = attrs.get("type")
        if kind is None:
            raise OptionError(f"{where} entry '{text}' has no type=",
                              hint=f"start it with type=, one of {', '.join(CACHE_TYPES)}")
        if kind not in CACHE_TYPES:
            raise OptionError(f"{where} entry '{text}': unknown cache type '{kind}'",
                              hint=f"use one of {', '.join(CACHE_TYPES)}, or an image reference")
        if kind == "registry" and not attrs.get("ref"):
            raise OptionError(f"{where} entry '{text}': type=registry needs ref=IMAGE",
                              hint="e.g. type=registry,ref=registry.example.com/team/app:buildcache")
        if kind == "local" and not attrs.get("dest" if sink else "src"):
            key = "dest" if sink else "src"
            raise OptionError(f"{where} entry '{text}': type=local needs {key}=DIRECTORY")
        return CacheEntry(text, kind, attrs.get("ref"))
    if sink:
        raise OptionError(f"cache_to entry '{text}' is not a cache spec",
                          hint="cache_to takes buildx specs such as type=registry,ref=IMAGE or "
                               "type=gha,mode=max; every image is already its own inline cache")
    try:
        parse_reference(text)
    except UsageError as exc:
        raise OptionError(f"cache_from entry: {exc}",
                          hint="an image reference (host/repository:tag) or type=...,") from None
    return CacheEntry(text, "image", text)


def relative_to(entry: CacheEntry, base: Path) -> CacheEntry:
    """A `type=local` spec from release.yml: its src=/dest= are relative to release.yml, like
    every other path there (on the command line they stay relative to the working directory)."""
    if entry.type != "local":
        return entry
    parts = []
    for part in entry.text.split(","):
        key, eq, value = part.partition("=")
        if key.strip() in ("src", "dest") and value and not Path(value).is_absolute():
            part = f"{key}={Path(base, value)}"
        parts.append(part)
    return CacheEntry(",".join(parts), entry.type, entry.ref)


def _attrs(text: str, where: str) -> dict[str, str]:
    """key=value pairs; a credential among them is refused before anything echoes the text."""
    pairs = [part.partition("=") for part in text.split(",")]
    for key, _, _ in pairs:
        if key.strip().lower() in CREDENTIAL_KEYS:
            raise OptionError(f"a {where} entry carries a credential ({key.strip()}=...); it is "
                              f"not shown, and it must not be written here: release.yml and "
                              f"command lines end up in logs and process lists",
                              hint="buildx reads cache credentials from the environment: "
                                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN "
                                   "(s3), AZURE_STORAGE_ACCOUNT_KEY (azblob), "
                                   "ACTIONS_RUNTIME_TOKEN (gha)")
    attrs: dict[str, str] = {}
    for (key, eq, value), part in zip(pairs, text.split(",")):
        if not eq or not key.strip():
            raise OptionError(f"{where} entry '{text}': '{part}' is not key=value")
        attrs[key.strip()] = value.strip()
    return attrs


def check_secret_id(text: str) -> str:
    if not SECRET_ID.match(text):
        raise OptionError(f"secret id '{text}' may use only letters, digits, '.', '_' and '-'",
                          hint="it is the id= of RUN --mount=type=secret,id=ID")
    return text


def check_env_name(key: str) -> None:
    """`env:` must name a variable. The value is not echoed: a secret typed here must not
    end up in a log."""
    if not ENV_NAME.match(key):
        raise OptionError("the value must name an environment variable ([A-Za-z_][A-Za-z0-9_]*); "
                          "the value written here is not one (it is not shown, in case it is "
                          "the secret itself)",
                          hint="write the variable's name, e.g. env: NPM_TOKEN, and set the "
                               "variable in the environment that runs release")
