"""The small Handlebars subset metadata-action users write in tag rules.

Supported: `{{name}}`, `{{ name }}`, `{{{name}}}` / `{{&name}}` (unescaped), comments, `\\{{`
escapes, and the two date helpers `{{date 'FMT' tz='Zone/Name'}}` / `{{commit_date 'FMT'}}`.
Output of `{{...}}` is HTML-escaped exactly like Handlebars does (`=` becomes `&#x3D;`), because
metadata-action passes that text on to the tag.  Anything else (blocks, sub-expressions, unknown
names) raises TemplateError instead of silently rendering as empty text like Handlebars would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Union

from pipeline.model.tags.moment import MomentFormatError, format_moment

DATE_HELPERS = ("date", "commit_date")

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "`": "&#x60;",
            "=": "&#x3D;"}
_LOOKAHEAD = r"(?=[=~}\s/.)|])"
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<close3>\}\}\})
      | (?P<close>\}\})
      | (?P<strip>~\}\})
      | "(?P<dq>(?:\\"|[^"])*)"
      | '(?P<sq>(?:\\'|[^'])*)'
      | (?P<kw>true|false|undefined|null)""" + _LOOKAHEAD + r"""
      | (?P<num>-?[0-9]+(?:\.[0-9]+)?)""" + _LOOKAHEAD + r"""
      | (?P<id>[^\s!"\#%-,./;->@\[-\^`{-~]+)""" + _LOOKAHEAD + r"""
      | (?P<eq>=)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Param:
    kind: str  # "string" | "number" | "bool" | "undefined" | "null" | "path"
    value: str


@dataclass(frozen=True)
class Mustache:
    name: str
    params: tuple[Param, ...] = ()
    hash: tuple[tuple[str, Param], ...] = ()
    escaped: bool = True
    source: str = ""


@dataclass(frozen=True)
class Comment:
    source: str = ""


Node = Union[str, Mustache, Comment]


@dataclass(frozen=True)
class Template:
    source: str
    nodes: tuple[Node, ...] = field(default=())


def escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text)


def _unsupported(what: str, source: str) -> TemplateError:
    return TemplateError(f"{source!r}: {what} is not supported in tag templates")


def _parse_mustache(src: str, start: int, triple: bool, escaped: bool, body_start: int) -> tuple[Mustache, int]:
    """Tokenise one mustache from body_start until its closing braces; return it and the end."""
    pos = body_start
    tokens: list[tuple[str, str]] = []
    while True:
        m = _TOKEN.match(src, pos)
        if m is None:
            raise TemplateError(f"unclosed '{{{{' in {src!r}")
        kind = m.lastgroup
        pos = m.end()
        if kind == "ws":
            continue
        if kind in ("close", "close3"):
            if triple and kind != "close3":
                raise TemplateError(f"'{{{{{{' must be closed with '}}}}}}' in {src!r}")
            if not triple and kind == "close3":
                raise TemplateError(f"'}}}}}}' closes a '{{{{' in {src!r}")
            break
        if kind == "strip":
            raise _unsupported("whitespace control '~'", src[start:pos])
        if kind == "other":
            if "}}" not in src[pos - 1:]:
                raise TemplateError(f"unclosed '{{{{' in {src!r}")
            ch = m.group(0)
            what = {"(": "a sub-expression", "[": "a [segment] path", "@": "an @data variable",
                    "|": "a block parameter", ".": "a dotted path", "/": "a path"}.get(ch)
            if what:
                raise _unsupported(what, src[start:])
            raise TemplateError(f"unexpected {ch!r} in {src[start:]!r}")
        if kind == "dq":
            tokens.append(("string", m.group("dq").replace('\\"', '"')))
        elif kind == "sq":
            tokens.append(("string", m.group("sq").replace("\\'", "'")))
        elif kind == "kw":
            word = m.group("kw")
            tokens.append(("bool" if word in ("true", "false") else word, word))
        else:
            tokens.append((kind, m.group(0)))
    source = src[start:pos]
    if not tokens:
        raise TemplateError(f"empty expression {source!r}")
    head_kind, head = tokens[0]
    if head_kind != "id":
        raise TemplateError(f"{source!r}: expected a name after '{{{{'")
    if head == "else":
        raise _unsupported("'else'", source)
    params: list[Param] = []
    hash_pairs: list[tuple[str, Param]] = []
    i = 1
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "id" and i + 1 < len(tokens) and tokens[i + 1][0] == "eq":
            if i + 2 >= len(tokens) or tokens[i + 2][0] in ("eq",):
                raise TemplateError(f"{source!r}: '{text}=' needs a value")
            vkind, vtext = tokens[i + 2]
            hash_pairs.append((text, Param("path" if vkind == "id" else vkind, vtext)))
            i += 3
            continue
        if kind == "eq":
            raise TemplateError(f"{source!r}: unexpected '='")
        if hash_pairs:
            raise TemplateError(f"{source!r}: arguments must come before key=value options")
        params.append(Param("path" if kind == "id" else kind, text))
        i += 1
    return Mustache(head, tuple(params), tuple(hash_pairs), escaped, source), pos


def parse_template(src: str) -> Template:
    """Split `src` into text and mustaches; raise TemplateError on syntax Handlebars rejects
    or on features outside the subset."""
    nodes: list[Node] = []
    text: list[str] = []
    i, n = 0, len(src)

    def flush() -> None:
        joined = "".join(text)
        text.clear()
        if joined:  # Handlebars has no empty content nodes; is_raw_statement counts nodes
            nodes.append(joined)

    while i < n:
        j = src.find("{{", i)
        if j == -1:
            text.append(src[i:])
            break
        chunk = src[i:j]
        if chunk.endswith("\\\\"):  # \\{{x}}: a literal backslash, then a real mustache
            text.append(chunk[:-1])
        elif chunk.endswith("\\"):  # \{{x}}: literal braces up to the next mustache
            text.append(chunk[:-1])
            p = j + 2
            while p < n and not (src.startswith("{{", p) or src.startswith("\\{{", p)
                                 or src.startswith("\\\\{{", p)):
                p += 1
            text.append(src[j:p])
            i = p
            continue
        else:
            text.append(chunk)
        flush()
        if src.startswith("{{!--", j):
            end = src.find("--}}", j + 5)
            if end == -1:
                raise TemplateError(f"unclosed comment in {src!r}")
            nodes.append(Comment(src[j:end + 4]))
            i = end + 4
            continue
        if src.startswith("{{!", j):
            end = src.find("}}", j + 3)
            if end == -1:
                raise TemplateError(f"unclosed comment in {src!r}")
            nodes.append(Comment(src[j:end + 2]))
            i = end + 2
            continue
        if src.startswith("{{{{", j):
            raise _unsupported("a raw block", src[j:])
        if src.startswith("{{{", j):
            node, i = _parse_mustache(src, j, True, False, j + 3)
            nodes.append(node)
            continue
        opener = src[j + 2:j + 3]
        if opener in ("#", "/", "^", ">", "*"):
            raise _unsupported(f"'{{{{{opener}' (blocks and partials)", src[j:])
        if opener == "~":
            raise _unsupported("whitespace control '~'", src[j:])
        if opener == "&":
            node, i = _parse_mustache(src, j, False, False, j + 3)
        else:
            node, i = _parse_mustache(src, j, False, True, j + 2)
        nodes.append(node)
    flush()
    return Template(src, tuple(nodes))


def is_raw_statement(pattern: str) -> bool:
    """True when the pattern is exactly one `{{raw}}` expression (spaces inside the braces allowed).

    metadata-action keeps such a pattern for prereleases; any other pattern collapses to the version.
    """
    try:
        tpl = parse_template(pattern)
    except TemplateError:
        return False
    return len(tpl.nodes) == 1 and isinstance(tpl.nodes[0], Mustache) and tpl.nodes[0].name == "raw"


def _zone(name: str):
    import zoneinfo  # only date templates need it
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    # moment-timezone looks zone names up case-insensitively
    for known in zoneinfo.available_timezones():
        if known.lower() == name.lower():
            return zoneinfo.ZoneInfo(known)
    raise TemplateError(f"unknown time zone {name!r}")


def _check_date_call(node: Mustache, values: Mapping[str, object]) -> tuple[str | None, str]:
    """Validate `{{date 'FMT' tz='X'}}`; return (format or None for moment's default, tz)."""
    if not node.params:
        raise TemplateError(f"{node.source!r}: {node.name} needs a format, e.g. {{{{{node.name} 'YYYYMMDD'}}}}")
    if len(node.params) > 1:
        raise TemplateError(f"{node.source!r}: {node.name} takes one format argument")
    fmt: str | None = None
    if node.params:
        p = node.params[0]
        if p.kind == "string":
            fmt = p.value
        elif p.kind == "path" and p.value not in values and p.value not in DATE_HELPERS:
            # Handlebars looks an unquoted word up as a variable: undefined -> moment's ISO default
            fmt = None
        else:
            raise TemplateError(f"{node.source!r}: write the {node.name} format in quotes, "
                                f"e.g. {{{{{node.name} 'YYYYMMDD'}}}}")
    tz = "UTC"
    for key, value in node.hash:
        if key != "tz":
            raise TemplateError(f"{node.source!r}: unknown {key} attribute (only tz= is allowed)")
        if value.kind != "string":
            raise TemplateError(f"{node.source!r}: write the time zone in quotes, e.g. tz='Asia/Tokyo'")
        tz = value.value
    return fmt, tz


def check_template(tpl: Template, values: Mapping[str, object] | set[str] | frozenset[str],
                   dates: bool) -> None:
    """Raise TemplateError if the template uses a name or helper that is not available."""
    allowed = set(values)
    for node in tpl.nodes:
        if not isinstance(node, Mustache):
            continue
        if dates and node.name in DATE_HELPERS:
            fmt, tz = _check_date_call(node, dict.fromkeys(allowed))
            try:  # surface unsupported format tokens and zones when the rule is read
                format_moment(datetime(2000, 1, 1, tzinfo=_zone(tz)), fmt)
            except MomentFormatError as exc:
                raise TemplateError(f"{node.source!r}: {exc}") from None
            continue
        if node.name in allowed:
            if node.params or node.hash:
                raise TemplateError(f"{node.source!r}: {{{{{node.name}}}}} takes no arguments")
            continue
        known = sorted(allowed | (set(DATE_HELPERS) if dates else set()))
        raise TemplateError(f"{node.source!r}: unknown expression {node.name!r}; "
                            f"available here: {', '.join(known) or 'none'}")


Value = Union[str, Callable[[], str]]


def render(template: str | Template, values: Mapping[str, Value],
           dates: Mapping[str, datetime] | None = None) -> str:
    """Render with `values` (strings or zero-argument callables) and, if given, the date helpers
    (`dates` maps 'date' / 'commit_date' to aware datetimes)."""
    tpl = template if isinstance(template, Template) else parse_template(template)
    check_template(tpl, values, dates is not None)
    out: list[str] = []
    for node in tpl.nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        if isinstance(node, Comment):
            continue
        if dates is not None and node.name in DATE_HELPERS:
            fmt, tz = _check_date_call(node, values)
            when = dates[node.name]
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            try:
                text = format_moment(when.astimezone(_zone(tz)), fmt)
            except MomentFormatError as exc:
                raise TemplateError(f"{node.source!r}: {exc}") from None
        else:
            value = values[node.name]
            text = value() if callable(value) else value
        out.append(escape(text) if node.escaped else text)
    return "".join(out)
