"""JavaScript regular expressions, as metadata-action applies them with `String.prototype.match`.

`pattern=` (type=match) and `match=` (type=semver/pep440) are either a plain JS regex source or
`/source/flags`.  Python's `re` accepts nearly the same syntax; the differences that matter for
tag patterns are translated (named groups) and the `g`/`y` flags change what `match` returns.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_SLASHED = re.compile(r"/(.+)/(.*)")  # same as metadata-action's /^\/(.+)\/(.*)$/ (greedy)
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_IGNORED_FLAGS = set("udv")  # unicode / indices: no effect on which text matches here


class JsRegexError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


BACKTRACKING_HINT = ("rewrite it without a quantifier inside a quantified group: e.g. ^(a+)+$ "
                     "is ^a+$, and (\\d+\\.?)+ is \\d+(\\.\\d+)*")


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
    problem = backtracking_problem(compiled.pattern, py_flags)
    if problem:
        raise JsRegexError(f"regular expression {source!r} can backtrack catastrophically and "
                           f"hang the release: {problem}", hint=BACKTRACKING_HINT)
    return JsRegex(source, flags, compiled)


# ---------------------------------------------------------------------------- backtracking

# A tag rule's regex runs on every release; one that can backtrack catastrophically
# (`^(a+)+$` on "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!") would hang it, and Python's `re` cannot be
# interrupted. So such a regex is refused when it is compiled (at load, naming the rule's line),
# by a static check on the parsed pattern. It is conservative: it may refuse a pattern that is in
# fact safe, never the reverse for the shapes below.
#
# Inside a repetition that can repeat (`*`, `+`, `{n,}`, `{n,m}` with m > 1), the text of one
# iteration must split one way only. The body is a sequence (groups flattened) of
#   - fixed-width items (a character, a class, `\d{3}`, an alternation whose branches have one
#     width), and
#   - variable-width items (a quantifier such as `+`, `*`, `?`, `{1,3}`, an alternation of
#     branches of different widths, a back-reference).
# A "separator" is a single-character item that cannot match any character that the body's
# variable items can match (`\.` in `(\d+\.)+`). The body is refused when
#   1. it has a variable item and no separator (the item meets itself in the next iteration:
#      `(a+)+`, `(.*)*`, `(\w+\s?)+`), or
#   2. two variable items are not parted by a separator, counting across the end of one
#      iteration and the start of the next (`(\d+\.\d+)+`, `(a+a+)+`), or
#   3. an alternation has two branches that can start with the same character, or can both
#      match nothing (`(a|a)*`, `(a|ab)+`); the same checks apply inside optional parts and
#      alternations of the body.
# An alternation whose branches start with different characters and each have one width
# (`(rc|beta)`) counts as fixed: the text picks the branch. Bodies such as `(\.\d+)*`,
# `(-[a-z]+)*`, `(foo|bar)*`, `(a|bc)+` and `(\d+\.){3}` pass.

try:  # Python 3.11+
    from re import _constants as _sre_c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_OTHER = 128  # stands for every non-ASCII character
_ALL = frozenset(range(129))
_DIGITS = frozenset(range(48, 58))
_SPACE = frozenset(map(ord, " \t\n\r\f\v"))
_WORD = frozenset(map(ord, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"))
_CATEGORIES = {
    "CATEGORY_DIGIT": _DIGITS, "CATEGORY_NOT_DIGIT": _ALL - _DIGITS,
    "CATEGORY_SPACE": _SPACE, "CATEGORY_NOT_SPACE": _ALL - _SPACE,
    "CATEGORY_WORD": _WORD, "CATEGORY_NOT_WORD": _ALL - _WORD,
    "CATEGORY_LINEBREAK": frozenset({10}), "CATEGORY_NOT_LINEBREAK": _ALL - {10},
}
_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, getattr(_sre_c, "POSSESSIVE_REPEAT", None)}
_SINGLE = {_sre_c.LITERAL, _sre_c.NOT_LITERAL, _sre_c.ANY, _sre_c.IN}


class _Unsafe(Exception):
    pass


def _cased(code: int) -> set[int]:
    if code >= 128:
        return {_OTHER}
    ch = chr(code)
    return {code, ord(ch.swapcase())} if ch.isalpha() else {code}


def _class_chars(items) -> frozenset[int]:
    found: set[int] = set()
    negate = False
    for op, av in items:
        if op is _sre_c.NEGATE:
            negate = True
        elif op is _sre_c.LITERAL:
            found |= _cased(av)
        elif op is _sre_c.RANGE:
            lo, hi = av
            for code in range(lo, min(hi, 127) + 1):
                found |= _cased(code)
            if hi > 127:
                found.add(_OTHER)
        elif op is _sre_c.CATEGORY:
            found |= _CATEGORIES.get(str(av), _ALL)
        else:
            found |= _ALL
    if negate:  # case folding makes the complement smaller: stay on the safe (larger) side
        return frozenset(_ALL - found) | {_OTHER}
    return frozenset(found)


_ATOMIC = getattr(_sre_c, "ATOMIC_GROUP", object())
_ZERO_WIDTH = {_sre_c.AT, _sre_c.ASSERT, _sre_c.ASSERT_NOT}
_ALTERNATIONS = {_sre_c.BRANCH, _sre_c.GROUPREF_EXISTS}


def _flatten(items) -> list:
    """The items of a sequence with capturing and non-capturing groups opened up."""
    out = []
    for op, av in items:
        if op is _sre_c.SUBPATTERN:
            out += _flatten(av[-1])
        else:
            out.append((op, av))
    return out


def _alternatives(op, av) -> list:
    if op is _sre_c.BRANCH:
        return list(av[1])
    if op is _sre_c.GROUPREF_EXISTS:
        return [av[1], av[2] or []]
    return []


def _chars(item) -> frozenset[int]:
    """Every character that `item` can match, anywhere in its match."""
    op, av = item
    if op is _sre_c.LITERAL:
        return frozenset(_cased(av))
    if op in (_sre_c.NOT_LITERAL, _sre_c.ANY):
        return _ALL
    if op is _sre_c.IN:
        return _class_chars(av)
    if op in _REPEATS:
        return _seq_chars(av[2])
    if op is _sre_c.SUBPATTERN:
        return _seq_chars(av[-1])
    if op is _ATOMIC:
        return _seq_chars(av)
    if op in _ALTERNATIONS:
        return frozenset().union(*(_seq_chars(alt) for alt in _alternatives(op, av)))
    if op in _ZERO_WIDTH:
        return frozenset()
    return _ALL  # back-references and anything unforeseen


def _seq_chars(items) -> frozenset[int]:
    return frozenset().union(*(_chars(item) for item in items))


def _first(items) -> tuple[frozenset[int], bool]:
    """(characters a match of the sequence can start with, whether it can match nothing)."""
    found: set[int] = set()
    for op, av in _flatten(items):
        if op in _SINGLE:
            return frozenset(found | _chars((op, av))), False
        if op in _REPEATS:
            chars, empty = _first(av[2])
            found |= chars
            if av[0] > 0 and not empty:
                return frozenset(found), False
        elif op in _ALTERNATIONS:
            firsts = [_first(alt) for alt in _alternatives(op, av)]
            found |= frozenset().union(*(f for f, _ in firsts))
            if not any(e for _, e in firsts):
                return frozenset(found), False
        elif op in _ZERO_WIDTH:
            continue
        elif op is _ATOMIC:
            chars, empty = _first(av)
            found |= chars
            if not empty:
                return frozenset(found), False
        else:
            return _ALL, True
    return frozenset(found), True


class _Checker:
    def __init__(self, state) -> None:
        self.state = state  # the parsed pattern's groups, for the width of a back-reference

    def width(self, item) -> tuple[int, int]:
        return _sre_parse.SubPattern(self.state, [item]).getwidth()

    def alternation(self, op, av) -> None:
        alts = [_first(alt) for alt in _alternatives(op, av)]
        for i, (chars_a, empty_a) in enumerate(alts):
            for chars_b, empty_b in alts[i + 1:]:
                if chars_a & chars_b or (empty_a and empty_b):
                    raise _Unsafe("an alternation inside a repetition has two branches that "
                                  "can match the same text")

    def deterministic(self, item) -> bool:
        """An alternation whose next character always picks one branch, each branch of one
        width (or made of such alternations): `(a|bc)`, `(rc|beta|alpha)`. Its width varies,
        but the text decides it, so it leaves no choice to backtrack into."""
        op, av = item
        if op is not _sre_c.BRANCH:
            return False
        firsts = [_first(alt) for alt in _alternatives(op, av)]
        if any(empty for _, empty in firsts):
            return False
        if any(a & b for i, (a, _) in enumerate(firsts) for b, _ in firsts[i + 1:]):
            return False
        return all(len(set(self.width(sub))) == 1 or self.deterministic(sub)
                   for alt in _alternatives(op, av) for sub in _flatten(alt))

    def sequence(self, items, cyclic: bool) -> None:
        """Raise _Unsafe if the sequence can split one text in more than one way (see above).
        `cyclic`: it is the body of a repetition, so its end meets its own start."""
        seq = _flatten(items)
        for op, av in seq:  # what is inside the items: alternations, optional parts
            if op is _sre_c.GROUPREF:
                raise _Unsafe("a back-reference inside a repetition")
            if op in _ALTERNATIONS:
                self.alternation(op, av)
                for alt in _alternatives(op, av):
                    self.sequence(alt, cyclic=False)
            elif op in _REPEATS and av[1] == 1:
                self.sequence(av[2], cyclic=False)
            elif op is _ATOMIC:
                continue  # no backtracking into it
        variable = [i for i, item in enumerate(seq)
                    if item[0] not in _ZERO_WIDTH and item[0] is not _ATOMIC
                    and len(set(self.width(item))) > 1 and not self.deterministic(item)]
        if not variable:
            return
        chars = frozenset().union(*(_chars(seq[i]) for i in variable))
        separators = [i for i, (op, av) in enumerate(seq)
                      if op in _SINGLE and not (_chars((op, av)) & chars)]
        if not separators:
            if cyclic or len(variable) > 1:
                raise _Unsafe("a repetition inside a repetition can match the same text in "
                              "more than one way (nested quantifiers)")
            return
        segments: dict[int, int] = {}
        for i in variable:
            segment = bisect.bisect_left(separators, i)
            if cyclic:
                segment %= len(separators)  # after the last separator = before the first
            segments[segment] = segments.get(segment, 0) + 1
        if max(segments.values()) > 1:
            raise _Unsafe("two quantified parts inside a repetition can match the same text, "
                          "with nothing between them that only one of them matches "
                          "(nested quantifiers)")

    def walk(self, items) -> None:
        for op, av in items:
            if op in _REPEATS:
                if av[1] > 1:
                    self.sequence(av[2], cyclic=True)
                self.walk(av[2])
            elif op is _sre_c.SUBPATTERN:
                self.walk(av[-1])
            elif op in _ALTERNATIONS:
                for alt in _alternatives(op, av):
                    self.walk(alt)
            elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
                self.walk(av[1])
            elif op is _ATOMIC:
                self.walk(av)


def backtracking_problem(source: str, flags: int = 0) -> str | None:
    """Why the regex `source` (Python syntax) can backtrack catastrophically, or None."""
    try:
        parsed = _sre_parse.parse(source, flags)
    except re.error:
        return None  # re.compile reports it
    try:
        _Checker(parsed.state).walk(list(parsed))
    except _Unsafe as exc:
        return str(exc)
    except RecursionError:
        return "the pattern nests too deeply"
    return None
