"""Semantic versions with node-semver's STRICT validity (what metadata-action's `type=semver` uses).

Strict means: an optional lower-case `v`, then MAJOR.MINOR.PATCH without leading zeros, an
optional `-prerelease` and `+build`.  `1.2`, `V1.2.3`, `=1.2.3` and `v01.2.3` are not versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# node-semver rejects longer strings and numbers above Number.MAX_SAFE_INTEGER.
MAX_LENGTH = 256
MAX_SAFE_INTEGER = 2**53 - 1

_NUM = r"0|[1-9][0-9]*"
_NONNUM = r"[0-9]*[a-zA-Z-][a-zA-Z0-9-]*"
_PRE_ID = rf"(?:{_NUM}|{_NONNUM})"
_BUILD_ID = r"[a-zA-Z0-9-]+"
_STRICT = re.compile(
    rf"v?({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+({_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)


@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...]
    build: tuple[str, ...]
    raw: str  # the input exactly as given (keeps `v` and `+build`)

    @property
    def version(self) -> str:
        """MAJOR.MINOR.PATCH[-PRERELEASE]: no `v`, no build metadata (node-semver's `.version`)."""
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)


def parse_semver(text: str) -> SemVer | None:
    """Parse `text` like node-semver `parse()` (strict); None when it is not a valid version."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return None
    m = _STRICT.fullmatch(text.strip())
    if m is None:
        return None
    major, minor, patch = (int(g) for g in m.group(1, 2, 3))
    if max(major, minor, patch) > MAX_SAFE_INTEGER:
        return None
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    build = tuple(m.group(5).split(".")) if m.group(5) else ()
    return SemVer(major, minor, patch, pre, build, text)


def is_semver(text: str) -> bool:
    return parse_semver(text) is not None


def _pre_key(ident: str) -> tuple[int, int, str]:
    # SemVer 2.0.0 §11: numeric identifiers sort numerically and below alphanumeric ones.
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


def precedence(v: SemVer) -> tuple:
    """A sort key with SemVer precedence: 1.0.0-rc.1 < 1.0.0 < 1.0.1 < 1.10.0 (build ignored)."""
    pre = (1,) if not v.prerelease else (0, *(_pre_key(i) for i in v.prerelease))
    return (v.major, v.minor, v.patch, pre)
