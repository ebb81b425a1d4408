"""Parse image references the way Docker does: `alpine` -> `docker.io/library/alpine:latest`.

    ref = parse_reference("localhost:5000/team/app:1.0@sha256:...")
    ref.host, ref.repository, ref.tag, ref.digest, ref.api_host, ref.reference, str(ref)

Rules (distribution/reference, `docker pull`):
  * The first path component is a registry host if it contains `.` or `:` or is
    `localhost` (or has upper-case letters, which a repository cannot have);
    otherwise the host is Docker Hub (`docker.io`).
  * `index.docker.io` is written `docker.io`; both are served by the API host
    `registry-1.docker.io`. Single-component Hub names get the `library/` prefix.
  * No tag and no digest means `:latest`. A digest may follow a tag (`name:tag@digest`).
  * `str()` gives the canonical form, and `parse_reference(str(ref)) == ref`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_HOSTNAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))*\Z")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z")
MAX_NAME = 255
EXAMPLE = "e.g. ghcr.io/acme/app:1.2.3, localhost:5000/app@sha256:<64 hex>, or alpine"


@dataclass(frozen=True)
class Reference:
    host: str                 # "docker.io" for Docker Hub, else "host[:port]" as written (lower-cased)
    repository: str           # "library/alpine", "team/app"
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves the HTTP API (Docker Hub: registry-1.docker.io)."""
        return api_host(self.host)

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.host, self.repository, _check_tag(tag, tag), None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.host, self.repository, self.tag, _check_digest(digest, digest))

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def api_host(host: str) -> str:
    return DOCKER_HUB_API if host.lower() in _HUB_ALIASES else host


def normalize_host(host: str) -> str:
    """Canonical spelling used to compare registries: lower case, Hub aliases folded."""
    host = host.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def parse_reference(text: str) -> Reference:
    original = text
    if not isinstance(text, str) or not text.strip():
        raise UsageError("empty image reference", hint=EXAMPLE)
    text = text.strip()
    if "://" in text:
        raise UsageError(f"invalid image reference '{original}': remove the URL scheme "
                         f"'{text.split('://', 1)[0]}://'", hint=EXAMPLE)
    if any(c.isspace() for c in text):
        raise UsageError(f"invalid image reference '{original}': contains whitespace", hint=EXAMPLE)

    digest = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        digest = _check_digest(digest, original)

    host, rest = _split_host(text)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if last.count(":") > 1:
        raise UsageError(f"invalid image reference '{original}': more than one ':' after the "
                         f"name ('{last}')", hint="write NAME:TAG; a tag cannot contain ':'")
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        tag = _check_tag(tag, original)
    if not rest:
        raise UsageError(f"invalid image reference '{original}': missing repository name", hint=EXAMPLE)

    if host is None:
        host = DOCKER_HUB
    else:
        host = _check_host(host, original)
    if host == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    _check_repository(rest, original)
    if len(host) + 1 + len(rest) > MAX_NAME:
        raise UsageError(f"invalid image reference '{original}': name longer than {MAX_NAME} characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(host, rest, tag, digest)


def _split_host(text: str) -> tuple[str | None, str]:
    first, sep, rest = text.partition("/")
    if sep and (("." in first or ":" in first or first == "localhost")
                or first != first.lower()):
        return first, rest
    return None, text


def _check_host(host: str, original: str) -> str:
    name, port = host, None
    if host.startswith("["):
        end = host.find("]")
        name, tail = host[:end + 1], host[end + 1:]
        if end < 0 or (tail and not tail.startswith(":")):
            raise UsageError(f"invalid registry host '{host}' in '{original}'", hint=EXAMPLE)
        port = tail[1:] if tail else None
        ok = bool(_IPV6.match(name))
    else:
        if ":" in host:
            name, port = host.rsplit(":", 1)
        ok = bool(_HOSTNAME.match(name))
    if not ok:
        raise UsageError(f"invalid registry host '{host}' in '{original}'", hint=EXAMPLE)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise UsageError(f"invalid port '{port}' in registry host '{host}' of '{original}'",
                         hint="the port must be a number between 1 and 65535")
    return normalize_host(host)


def _check_repository(repo: str, original: str) -> None:
    for component in repo.split("/"):
        if _COMPONENT.match(component):
            continue
        if component.lower() != component and _COMPONENT.match(component.lower()):
            raise UsageError(f"invalid image reference '{original}': repository name must be "
                             f"lowercase ('{component}')", hint=f"use '{repo.lower()}'")
        if not component:
            raise UsageError(f"invalid image reference '{original}': empty path component "
                             "(double or trailing '/')", hint=EXAMPLE)
        raise UsageError(f"invalid image reference '{original}': '{component}' is not a valid "
                         "repository path component",
                         hint="lowercase letters, digits and single separators . _ __ - between them")


def validate_tag(tag: str) -> str:
    """The tag itself, or UsageError if a registry would refuse it."""
    return _check_tag(tag, tag)


def _check_tag(tag: str, original: str) -> str:
    if not _TAG.match(tag):
        raise UsageError(f"invalid tag '{tag}' in '{original}'",
                         hint="a tag is 1-128 of [A-Za-z0-9_.-] and may not start with '.' or '-'")
    return tag


def _check_digest(digest: str, original: str) -> str:
    if not _DIGEST.match(digest):
        raise UsageError(f"invalid digest '{digest}' in '{original}'",
                         hint="expected sha256:<64 lowercase hex> (or sha512:<128 hex>)")
    return digest
