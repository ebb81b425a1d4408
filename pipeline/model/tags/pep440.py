"""PEP 440 versions, parsed and normalised the way metadata-action's `type=pep440` does it.

metadata-action uses `@renovate/pep440`, a JavaScript port of `packaging.version`.  Two of its
quirks are kept on purpose so that tags stay identical: numbers go through JavaScript's
`Number()` (so `1.01` is `1.1`), and a local version is printed with commas (`1.2.3+local.7`
normalises to `1.2.3+local,7`, which tag sanitisation turns into `1.2.3-local-7`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_PATTERN = r"""
    v?
    (?:
        (?:(?P<epoch>[0-9]+)!)?
        (?P<release>[0-9]+(?:\.[0-9]+)*)
        (?P<pre>
            [-_.]?
            (?P<pre_l>a|b|c|rc|alpha|beta|pre|preview)
            [-_.]?
            (?P<pre_n>[0-9]+)?
        )?
        (?P<post>
            (?:-(?P<post_n1>[0-9]+))
            |
            (?:
                [-_.]?
                (?P<post_l>post|rev|r)
                [-_.]?
                (?P<post_n2>[0-9]+)?
            )
        )?
        (?P<dev>
            [-_.]?
            (?P<dev_l>dev)
            [-_.]?
            (?P<dev_n>[0-9]+)?
        )?
    )
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
"""
_VALID = re.compile(_VERSION_PATTERN, re.VERBOSE | re.IGNORECASE)
# `clean()` (the normalised `{{version}}`) tolerates surrounding blanks, `valid()` does not.
_CLEAN = re.compile(r"\s*" + _VERSION_PATTERN + r"\s*", re.VERBOSE | re.IGNORECASE)

_LETTER_ALIASES = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc",
                   "rev": "post", "r": "post"}


def js_number(text: str) -> str | None:
    """String form of JavaScript `Number(text)` for the [a-z0-9]+ words PEP 440 allows; None for NaN."""
    t = text.strip()
    low = t.lower()
    value: int | None = None
    if re.fullmatch(r"[0-9]+", t):
        value = int(t)
    elif re.fullmatch(r"[0-9]+e[0-9]+", low):
        mant, exp = low.split("e")
        value = int(mant) * 10 ** int(exp) if int(exp) < 400 else (0 if int(mant) == 0 else None)
        if value is None:
            return "Infinity"
    elif re.fullmatch(r"0x[0-9a-f]+", low):
        value = int(low[2:], 16)
    elif re.fullmatch(r"0o[0-7]+", low):
        value = int(low[2:], 8)
    elif re.fullmatch(r"0b[01]+", low):
        value = int(low[2:], 2)
    elif t == "Infinity":
        return "Infinity"
    if value is None:
        return None
    try:
        f = float(value)
    except OverflowError:
        return "Infinity"
    if f == float("inf"):
        return "Infinity"
    if f < 1e21:
        return str(int(f))
    return repr(f).replace("inf", "Infinity")


def _num(text: str) -> str:
    result = js_number(text)
    return result if result is not None else "NaN"


def _letter_version(letter: str | None, number: str | None) -> tuple[str, str] | None:
    if letter:
        letter = letter.lower()
        return (_LETTER_ALIASES.get(letter, letter), _num(number) if number else "0")
    if number:  # 1.0-1 is the implicit post-release syntax
        return ("post", _num(number))
    return None


@dataclass(frozen=True)
class Pep440Version:
    epoch: str
    release: tuple[str, ...]
    pre: tuple[str, str] | None
    post: tuple[str, str] | None
    dev: tuple[str, str] | None
    local: tuple[str, ...] | None
    raw: str

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    @property
    def is_postrelease(self) -> bool:
        return self.post is not None

    @property
    def is_devrelease(self) -> bool:
        return self.dev is not None

    @property
    def is_final(self) -> bool:
        """No pre-, post- or dev-part: the only kind that keeps its pattern and votes for `latest`."""
        return not (self.is_prerelease or self.is_postrelease)

    @property
    def major(self) -> str:
        return self.release[0]

    @property
    def minor(self) -> str:
        return self.release[1] if len(self.release) > 1 else "0"

    @property
    def patch(self) -> str:
        return self.release[2] if len(self.release) > 2 else "0"

    def normalized(self) -> str:
        parts = []
        if self.epoch != "0":
            parts.append(f"{self.epoch}!")
        parts.append(".".join(self.release))
        if self.pre:
            parts.append("".join(self.pre))
        if self.post:
            parts.append("." + "".join(self.post))
        if self.dev:
            parts.append("." + "".join(self.dev))
        if self.local:
            parts.append("+" + ",".join(self.local))
        return "".join(parts)


def _from_match(m: re.Match[str], raw: str) -> Pep440Version:
    local = None
    if m.group("local"):
        local = tuple(js_number(p) or p.lower() for p in re.split(r"[._-]", m.group("local")))
    return Pep440Version(
        epoch=_num(m.group("epoch")) if m.group("epoch") else "0",
        release=tuple(_num(p) for p in m.group("release").split(".")),
        pre=_letter_version(m.group("pre_l"), m.group("pre_n")),
        post=_letter_version(m.group("post_l"), m.group("post_n1") or m.group("post_n2")),
        dev=_letter_version(m.group("dev_l"), m.group("dev_n")),
        local=local,
        raw=raw,
    )


def parse_pep440(text: str) -> Pep440Version | None:
    """Parse a PEP 440 version (a leading `v` is allowed); None when invalid."""
    if not isinstance(text, str):
        return None
    m = _VALID.fullmatch(text)
    return _from_match(m, text) if m else None


def is_pep440(text: str) -> bool:
    return parse_pep440(text) is not None


def normalize_pep440(text: str) -> str | None:
    """The normalised form (`1.1beta2` -> `1.1b2`, `1.0.0-rc.1` -> `1.0.0rc1`); None when invalid."""
    m = _CLEAN.fullmatch(text) if isinstance(text, str) else None
    return _from_match(m, text).normalized() if m else None
