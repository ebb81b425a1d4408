"""JavaScript regular expressions, as metadata-action applies them with `String.prototype.match`.

`pattern=` (type=match) and `match=` (type=semver/pep440) are either a plain JS regex source or
`/source/flags`.  Python's `re` accepts nearly the same syntax; the differences that matter for
tag patterns are translated (named groups) and the `g`/`y` flags change what `match` returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SLASHED = re.compile(r"/(.+)/(.*)")  # same as metadata-action's /^\/(.+)\/(.*)$/ (greedy)
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_IGNORED_FLAGS = set("udv")  # unicode / indices: no effect on which text matches here


class JsRegexError(ValueError):
    pass


@dataclass(frozen=True)
class JsRegex:
    source: str
    flags: str
    compiled: re.Pattern[str]

    @property
    def global_(self) -> bool:
        return "g" in self.flags

    @property
    def sticky(self) -> bool:
        return "y" in self.flags

    def match(self, text: str) -> list[str | None] | None:
        """Like JS `text.match(re)`: [whole, group1, ...] (None for a group that did not take part),
        or with the `g` flag the list of every whole match; None when nothing matches."""
        if self.global_:
            found: list[str | None] = []
            if self.sticky:
                pos = 0
                while pos <= len(text):
                    m = self.compiled.match(text, pos)
                    if m is None:
                        break
                    found.append(m.group(0))
                    pos = m.end() if m.end() > pos else pos + 1
            else:
                found = [m.group(0) for m in self.compiled.finditer(text)]
            return found or None
        m = self.compiled.match(text) if self.sticky else self.compiled.search(text)
        if m is None:
            return None
        return [m.group(0), *m.groups()]


def _translate(source: str) -> str:
    """JS -> Python: `(?<name>` -> `(?P<name>`, `\\k<name>` -> `(?P=name)`, `[^]` -> any char."""
    out = []
    i = 0
    in_class = False
    while i < len(source):
        c = source[i]
        if c == "\\" and i + 1 < len(source):
            if not in_class and source[i + 1] == "k" and i + 2 < len(source) and source[i + 2] == "<":
                end = source.find(">", i + 3)
                if end != -1:
                    out.append(f"(?P={source[i + 3:end]})")
                    i = end + 1
                    continue
            out.append(source[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            if source.startswith("[^]", i):
                out.append(r"[\s\S]")
                i += 3
                continue
            in_class = True
            out.append(c)
            i += 1
            continue
        if source.startswith("(?<", i) and not source.startswith("(?<=", i) and not source.startswith("(?<!", i):
            out.append("(?P<")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def compile_js_regex(pattern: str) -> JsRegex:
    """Compile `pattern` the way metadata-action does: `/re/flags`, or else a flag-less regex."""
    m = _SLASHED.fullmatch(pattern)
    source, flags = (m.group(1), m.group(2)) if m else (pattern, "")
    py_flags = re.ASCII  # JS \d, \w and \b are ASCII-only
    for f in flags:
        if flags.count(f) > 1 or (f not in _FLAGS and f not in _IGNORED_FLAGS and f not in "gy"):
            raise JsRegexError(f"invalid regular expression flags {flags!r}")
        py_flags |= _FLAGS.get(f, 0)
    try:
        compiled = re.compile(_translate(source), py_flags)
    except re.error as exc:
        raise JsRegexError(f"invalid regular expression {source!r}: {exc}") from None
    return JsRegex(source, flags, compiled)
