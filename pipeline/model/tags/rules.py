"""Parse `tags:` lines into TagRule and `flavor:` lines into Flavor, like metadata-action.

Each tag line is one CSV record (a field holding a comma must be double-quoted as a whole:
`type=match,"pattern=\\d{1,3}"`).  A field splits at its first `=`; the key is trimmed and
lower-cased; a field without `=` is the `value`; a missing type means `raw`.  Templates and
regular expressions are checked here so that mistakes show up when release.yml is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.errors import TagRuleError
from pipeline.model.tags.jsregex import JsRegexError, compile_js_regex
from pipeline.model.tags.template import TemplateError, check_template, parse_template

DEFAULT_TAG_LINES = [
    "type=semver,pattern={{version}}",
    "type=semver,pattern={{major}}.{{minor}}",
    "type=semver,pattern={{major}}",
]
DEFAULT_FLAVOR_LINES = ["latest=auto"]

TYPES = ("schedule", "semver", "pep440", "match", "edge", "ref", "raw", "sha")
DEFAULT_PRIORITIES = {"schedule": 1000, "semver": 900, "pep440": 900, "match": 800, "edge": 700,
                      "ref": 600, "raw": 200, "sha": 100}
REF_EVENTS = ("branch", "tag", "pr")
SHA_FORMATS = ("short", "long")

# Names usable in value=, prefix=, suffix=, enable= (metadata-action's "global expressions").
GLOBAL_NAMES = frozenset({"branch", "tag", "sha", "base_ref", "is_default_branch",
                          "is_not_default_branch"})
SEMVER_NAMES = frozenset({"raw", "version", "major", "minor", "patch", "prerelease", "build"})
PEP440_NAMES = frozenset({"raw", "version", "major", "minor", "patch"})

_COMMON_KEYS = {"type", "enable", "priority", "prefix", "suffix"}
_TYPE_KEYS = {
    "schedule": {"pattern"},
    "semver": {"pattern", "value", "match"},
    "pep440": {"pattern", "value", "match"},
    "match": {"pattern", "group", "value"},
    "edge": {"branch"},
    "ref": {"event"},
    "raw": {"value"},
    "sha": {"format"},
}

_QUOTE_HINT = 'double-quote a whole field that contains a comma, e.g. type=match,"pattern=^v(\\d{1,3})"'


class CsvLineError(ValueError):
    pass


def split_csv_record(line: str) -> list[str]:
    """Fields of one CSV record, with csv-parse's default (strict) quoting rules."""
    fields: list[str] = []
    buf: list[str] = []
    i, n = 0, len(line)
    quoting = False
    while i < n:
        c = line[i]
        if quoting:
            if c == '"':
                if line.startswith('""', i):
                    buf.append('"')
                    i += 2
                    continue
                quoting = False
                i += 1
                if i < n and line[i] != ",":
                    raise CsvLineError(f"unexpected {line[i]!r} after a closing quote (a quoted field "
                                       "must end right before ',' or the end of the line)")
                continue
            buf.append(c)
            i += 1
            continue
        if c == '"':
            if buf:
                raise CsvLineError("a quote may only start a field (found one after "
                                   f"{''.join(buf)!r})")
            quoting = True
            i += 1
            continue
        if c == ",":
            fields.append("".join(buf))
            buf = []
        elif c in "\r\n":
            raise CsvLineError("a tag rule must be a single line")
        else:
            buf.append(c)
        i += 1
    if quoting:
        raise CsvLineError("a quote is not closed")
    fields.append("".join(buf))
    return fields


@dataclass(frozen=True)
class TagRule:
    """One parsed `tags:` line.  `attrs` holds every attribute (defaults filled in) except type."""

    type: str
    attrs: Mapping[str, str]
    text: str
    index: int = 0
    priority: float = 0
    ignored: tuple[str, ...] = field(default=())  # attribute keys this type does not use

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrs.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.attrs

    @property
    def enable(self) -> str:
        return self.attrs.get("enable", "true")

    @property
    def label(self) -> str:
        return f"tags[{self.index}] {self.text!r}"


@dataclass(frozen=True)
class Flavor:
    latest: str = "auto"  # "auto" | "true" | "false" | "highest" (auto, and only the highest release)
    prefix: str = ""
    prefix_latest: bool = False
    suffix: str = ""
    suffix_latest: bool = False
    prefix_index: int | None = None  # flavor line that set prefix / suffix, for error messages
    suffix_index: int | None = None


def _priority(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return int(value) if value.is_integer() else value


def _check(template: str, names: frozenset[str], dates: bool, what: str) -> None:
    try:
        check_template(parse_template(template), names, dates)
    except TemplateError as exc:
        raise TemplateError(f"{what}: {exc}") from None


def parse_tag_rule(line: str, index: int = 0) -> TagRule:
    """Parse one `tags:` entry; raise TagRuleError(index=index, section="tags") on any mistake."""

    def fail(message: str, hint: str | None = None) -> TagRuleError:
        return TagRuleError(message, index=index, section="tags", hint=hint)

    if not isinstance(line, str) or not line.strip():
        raise fail("empty tag rule", hint="write e.g. type=semver,pattern={{version}}")
    try:
        fields = split_csv_record(line)
    except CsvLineError as exc:
        raise fail(f"{exc}", hint=_QUOTE_HINT) from None

    rule_type: str | None = None
    attrs: dict[str, str] = {}
    for raw_field in fields:
        eq = raw_field.find("=")
        if eq <= 0:  # no '=' (or only a leading one): the whole field is the value
            attrs["value"] = raw_field.strip()
            continue
        key, value = raw_field[:eq].strip().lower(), raw_field[eq + 1:].strip()
        if key == "type":
            if value not in TYPES:
                raise fail(f"unknown tag type {value!r}", hint=f"use one of {', '.join(TYPES)}")
            rule_type = value
        else:
            attrs[key] = value
    rule_type = rule_type or "raw"

    if rule_type == "schedule":
        attrs.setdefault("pattern", "nightly")
    elif rule_type in ("semver", "pep440", "match"):
        if "pattern" not in attrs:
            example = {"semver": "type=semver,pattern={{version}}",
                       "pep440": "type=pep440,pattern={{version}}",
                       "match": "type=match,pattern=v(.*),group=1"}[rule_type]
            raise fail(f"type={rule_type} needs a pattern", hint=f"e.g. {example}")
        attrs.setdefault("value", "")
        if rule_type == "match":
            group = attrs.setdefault("group", "0")
            if not group.isdigit() or not group.isascii() or (len(group) > 1 and group[0] == "0"):
                raise fail(f"match group must be a whole number, got {group!r}",
                           hint="group=0 is the whole match, group=1 the first (...) group")
    elif rule_type == "edge":
        attrs.setdefault("branch", "")
    elif rule_type == "ref":
        if "event" not in attrs:
            raise fail("type=ref needs event=branch, event=tag or event=pr")
        if attrs["event"] not in REF_EVENTS:
            raise fail(f"type=ref event must be branch, tag or pr, got {attrs['event']!r}")
        if attrs["event"] == "pr":
            attrs.setdefault("prefix", "pr-")
    elif rule_type == "raw":
        if "value" not in attrs:
            raise fail("type=raw needs a value", hint="e.g. type=raw,value=stable")
    elif rule_type == "sha":
        attrs.setdefault("prefix", "sha-")
        attrs.setdefault("format", "short")
        if attrs["format"] not in SHA_FORMATS:
            raise fail(f"type=sha format must be short or long, got {attrs['format']!r}")

    attrs.setdefault("enable", "true")
    priority_text = attrs.setdefault("priority", str(DEFAULT_PRIORITIES[rule_type]))
    try:
        priority = _priority(priority_text)
    except ValueError:
        raise fail(f"priority must be a number, got {priority_text!r}",
                   hint="higher runs first; defaults: semver/pep440 900, ref 600, raw 200, sha 100") from None

    enable = attrs["enable"]
    if "{{" not in enable and enable not in ("true", "false"):
        raise fail(f"enable must be true, false or a template like {{{{is_default_branch}}}}, got {enable!r}")

    # Templates and regular expressions are static: check them now, not at release time.
    try:
        for key in ("enable", "prefix", "suffix"):
            if key in attrs:
                _check(attrs[key], GLOBAL_NAMES, True, key)
        if rule_type in ("raw", "semver", "pep440", "match") and attrs.get("value"):
            _check(attrs["value"], GLOBAL_NAMES, True, "value")
        if rule_type == "semver":
            _check(attrs["pattern"], SEMVER_NAMES, False, "pattern")
        elif rule_type == "pep440":
            _check(attrs["pattern"], PEP440_NAMES, False, "pattern")
        elif rule_type == "schedule":
            _check(attrs["pattern"], frozenset(), True, "pattern")
    except TemplateError as exc:
        raise fail(str(exc)) from None
    regexes = ([attrs["pattern"]] if rule_type == "match" else []) + \
        ([attrs["match"]] if rule_type in ("semver", "pep440") and attrs.get("match") else [])
    if regexes:
        try:
            for source in regexes:
                compile_js_regex(source)
        except JsRegexError as exc:
            raise fail(str(exc), hint=exc.hint) from None

    ignored = tuple(k for k in attrs if k not in _COMMON_KEYS | _TYPE_KEYS[rule_type])
    return TagRule(type=rule_type, attrs=attrs, text=line, index=index, priority=priority,
                   ignored=ignored)


def parse_tag_rules(lines: list[str]) -> list[TagRule]:
    """Parse a whole `tags:` list; index = position in the list."""
    return [parse_tag_rule(line, i) for i, line in enumerate(lines)]


def parse_flavor(lines: list[str]) -> Flavor:
    """Parse `flavor:` lines (`latest=auto|true|false|highest`, `prefix=X[,onlatest=true]`, `suffix=...`);
    raise TagRuleError(index=i, section="flavor")."""
    values: dict[str, object] = {"latest": "auto", "prefix": "", "prefix_latest": False,
                                 "suffix": "", "suffix_latest": False,
                                 "prefix_index": None, "suffix_index": None}
    for i, line in enumerate(lines):
        def fail(message: str, hint: str | None = None, i: int = i) -> TagRuleError:
            return TagRuleError(message, index=i, section="flavor", hint=hint)

        if not isinstance(line, str) or not line.strip():
            raise fail("empty flavor entry", hint="write e.g. latest=auto or suffix=-alpine")
        try:
            fields = split_csv_record(line)
        except CsvLineError as exc:
            raise fail(str(exc)) from None
        onlatest_for: str | None = None
        for raw_field in fields:
            parts = [p.strip() for p in raw_field.split("=")]
            if len(parts) == 1:
                raise fail(f"invalid flavor entry {raw_field.strip()!r}: expected key=value",
                           hint="keys: latest, prefix, suffix, onlatest")
            if len(parts) > 2:
                raise fail(f"a flavor value cannot contain '=': {raw_field.strip()!r}")
            key, value = parts[0].lower(), parts[1]
            if key == "latest":
                if value not in ("auto", "true", "false", "highest"):
                    raise fail(f"latest must be auto, true, false or highest, got {value!r}")
                values["latest"] = value
            elif key in ("prefix", "suffix"):
                try:
                    _check(value, GLOBAL_NAMES, True, key)
                except TemplateError as exc:
                    raise fail(str(exc)) from None
                values[key] = value
                values[f"{key}_index"] = i
                onlatest_for = key
            elif key == "onlatest":
                if value not in ("true", "false"):
                    raise fail(f"onlatest must be true or false, got {value!r}")
                if onlatest_for is None:
                    raise fail("onlatest must follow prefix= or suffix= on the same line",
                               hint="e.g. suffix=-alpine,onlatest=true")
                values[f"{onlatest_for}_latest"] = value == "true"
            else:
                raise fail(f"unknown flavor entry {key!r}", hint="keys: latest, prefix, suffix, onlatest")
    return Flavor(**values)  # type: ignore[arg-type]
