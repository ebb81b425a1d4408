"""Which git tags start a release in the generated CI: derived from release.yml's tag rules.

GitHub filters `on.push.tags` with glob patterns, GitLab with `$CI_COMMIT_TAG =~ /RE2/`. Each
rule that reads a version from a tag (semver, pep440, match, ref event=tag) becomes a glob
that matches at least the tags its JavaScript regex matches (`glob_from_regex`) and, where RE2
can say it, the same regex for GitLab (`gitlab_regex`). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SLASHED = re.compile(r"/(.+)/(.*)")  # `/source/flags`, read as pipeline.model.tags.jsregex reads it

SEMVER_GLOBS = ("v[0-9]+.[0-9]+.[0-9]+*", "[0-9]+.[0-9]+.[0-9]+*")
SEMVER_REGEX = r"/^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/"
PEP440_GLOBS = ("v[0-9]*", "[0-9]*")
PEP440_REGEX = (r"/^v?(\d+!)?\d+(\.\d+)*([._-]?(a|b|c|rc|alpha|beta|pre|preview|post|rev|r|dev)"
                r"[._-]?\d*)*$/i")
ANY_TAG = "**"


def _regex_parts(pattern: str) -> tuple[str, str]:
    m = _SLASHED.fullmatch(pattern)
    return (m.group(1), m.group(2)) if m else (pattern, "")


_GLOB_LITERAL = re.compile(r"[A-Za-z0-9_./-]")


def _group_end(source: str, start: int) -> int | None:
    """Index of the `)` closing the group opened at `start`, or None."""
    depth, i, in_class = 0, start, False
    while i < len(source):
        c = source[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def glob_from_regex(pattern: str) -> str:
    """A GitHub filter pattern that matches at least every tag the JS regex matches.

    Anchored literal text and `\\d+`-style runs are kept (`^v(\\d+\\.\\d+)$` -> `v[0-9]+.[0-9]+`);
    at the first construct without a glob equivalent the rest becomes `**`. Unanchored -> `**`.
    """
    source, flags = _regex_parts(pattern)
    if not source.startswith("^") or "|" in source or "g" in flags:
        return ANY_TAG
    out: list[str] = []
    i, n = 1, len(source)
    anchored_end = False
    while i < n:
        c = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if c == "$" and i == n - 1:
            anchored_end = True
            break
        if c == "(":
            close = _group_end(source, i)
            if close is None or (close + 1 < n and source[close + 1] in "?*+{"):
                break  # an optional or repeated group: the glob stops before it
            if source.startswith("(?:", i):
                i += 3
                continue
            if source.startswith(("(?<", "(?P<"), i) and not source.startswith(("(?<=", "(?<!"), i):
                end = source.find(">", i)
                if end < 0:
                    break
                i = end + 1
                continue
            if nxt == "?":
                break
            i += 1
            continue
        if c == ")":
            if nxt in ("?", "*", "+", "{"):
                break
            i += 1
            continue
        if c == "\\" and nxt == "d":
            q = source[i + 2] if i + 2 < n else ""
            if q == "+":
                out.append("[0-9]+")
                i += 3
            elif q == "{":
                end = source.find("}", i)
                if end < 0 or source.startswith("{0", i + 2):
                    break
                out.append("[0-9]+")
                i = end + 1
            elif q in ("*", "?"):
                break
            else:
                out.append("[0-9]")
                i += 2
            continue
        if c == "\\" and nxt in ".-_/":
            literal, width = nxt, 2
        elif _GLOB_LITERAL.match(c) and c != ".":
            literal, width = c, 1
        else:
            break
        if "i" in flags and literal.isalpha():
            break  # case-insensitive: a glob cannot say that
        quantifier = source[i + width] if i + width < n else ""
        if quantifier and quantifier in "?*+{":
            break  # a quantified literal: stop before it
        out.append(literal)
        i += width
    glob = "".join(out)
    if not anchored_end:
        glob += ANY_TAG  # `**` also matches '/', which `*` does not
    return glob


_RE2_UNSUPPORTED = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|\\k<")


def gitlab_regex(pattern: str) -> str | None:
    """The JS regex as a GitLab `=~` literal (RE2), or None if RE2 cannot express it."""
    source, flags = _regex_parts(pattern)
    if _RE2_UNSUPPORTED.search(source):
        return None
    source = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", source)
    source = re.sub(r"(?<!\\)/", r"\/", source)
    kept = "".join(f for f in flags if f in "ims")
    return f"/{source}/{kept}"


@dataclass(frozen=True)
class TagTriggers:
    globs: tuple[str, ...]        # GitHub on.push.tags
    regexes: tuple[str, ...]      # GitLab `$CI_COMMIT_TAG =~ REGEX`; empty = any tag
    sources: tuple[str, ...]      # the rules they come from, for the header comment


def tag_triggers(rules) -> TagTriggers:
    """Which git tags start a release: the ones the (enabled) tag rules read a version from."""
    globs: list[str] = []
    regexes: list[str | None] = []
    sources: list[str] = []
    for rule in rules:
        if rule.get("enable", "true") == "false" or rule.get("value"):
            continue
        pattern = None
        if rule.type in ("semver", "pep440"):
            pattern = rule.get("match") or None
            if pattern is None:
                semver = rule.type == "semver"
                globs.extend(SEMVER_GLOBS if semver else PEP440_GLOBS)
                regexes.append(SEMVER_REGEX if semver else PEP440_REGEX)
                sources.append(rule.text)
                continue
        elif rule.type == "match":
            pattern = rule.get("pattern")
        elif rule.type == "ref" and rule.get("event") == "tag":
            globs.append(ANY_TAG)
            regexes.append(None)
            sources.append(rule.text)
            continue
        else:
            continue
        globs.append(glob_from_regex(pattern))
        regexes.append(gitlab_regex(pattern))
        sources.append(rule.text)
    if not globs:  # no rule reads a tag (raw/sha/edge only): any tag may start a release
        globs, regexes = [ANY_TAG], [None]
    if ANY_TAG in globs:
        globs = [ANY_TAG]
    if None in regexes:
        regexes = []
    return TagTriggers(tuple(dict.fromkeys(globs)), tuple(dict.fromkeys(r for r in regexes if r)),
                       tuple(dict.fromkeys(sources)))
