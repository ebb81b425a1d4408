"""derive_tags: rules + flavor + context -> the tags to push, exactly as docker/metadata-action.

Two deliberate differences, both only where the action would push something broken: a tag
that is not a valid Docker tag raises TagRuleError instead of being passed on, and `latest`
is never listed twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.errors import TagRuleError, UsageError
from pipeline.model.tags.context import TagContext
from pipeline.model.tags.jsregex import compile_js_regex as compile_js
from pipeline.model.tags.pep440 import normalize_pep440 as normalize
from pipeline.model.tags.pep440 import parse_pep440 as parse
from pipeline.model.tags.rules import Flavor, TagRule
from pipeline.model.tags.semver import SemVer, parse_semver
from pipeline.model.tags.template import TemplateError, is_raw_statement, render


# PEP 440 and JavaScript-regex support load on first use: most release.yml files use
# neither, and every `release` run pays for what is imported here.
def parse_pep440(text: str):
    return parse(text)


def normalize_pep440(text: str):
    return normalize(text)


def compile_js_regex(pattern: str):
    return compile_js(pattern)


_DISALLOWED = re.compile(r"[^a-zA-Z0-9._-]+")
_VALID_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_TAG_RULE = "must start with a letter, digit or '_' and be at most 128 characters"
# metadata-action: these events always run on the default branch's last commit.
_DEFAULT_BRANCH_EVENTS = ("create", "discussion", "issues", "schedule")


@dataclass(frozen=True)
class TagResult:
    version: str | None  # the first (highest-priority) tag: the immutable one
    tags: list[str]  # version first, then the rest de-duplicated, `latest` last
    latest: bool
    warnings: list[str] = field(default_factory=list)  # what metadata-action logs as warnings
    # flavor latest=highest: `latest` moves on a registry only if `version` is the highest
    # release there (decided by the caller, which can see the registry)
    latest_if_highest: bool = False

    @property
    def latest_tag(self) -> str | None:
        return self.tags[-1] if self.latest and self.tags else None


def sanitize_tag(value: str) -> str:
    """metadata-action's sanitiser: every run of characters outside [a-zA-Z0-9._-] becomes '-'."""
    return _DISALLOWED.sub("-", value)


def is_valid_tag(value: str) -> bool:
    return _VALID_TAG.fullmatch(value) is not None


def is_prerelease(version: str) -> bool:
    """True for a semver prerelease (1.3.0-rc.1) or a PEP 440 pre/post/dev release (1.3rc1)."""
    sv = parse_semver(version)
    if sv is not None:
        return sv.is_prerelease
    pv = parse_pep440(version)
    return pv is not None and not pv.is_final


class _Deriver:
    def __init__(self, flavor: Flavor, ctx: TagContext):
        self.flavor = flavor
        self.ctx = ctx
        self.warnings: list[str] = []
        self.dates = {"date": ctx.now, "commit_date": ctx.commit_date or ctx.now}
        ref = ctx.ref or ""
        branch_like = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
        is_default = bool(branch_like) and (
            (ctx.default_branch is not None and ctx.default_branch == branch_like)
            or any(e in (ctx.event or "") for e in _DEFAULT_BRANCH_EVENTS))
        base_ref = ""  # the PR's target branch, or for a tag push the payload's base_ref
        if ctx.base_ref and ref.startswith(("refs/pull/", "refs/tags/")):
            base_ref = ctx.base_ref.removeprefix("refs/heads/")
        self.globals: dict[str, str | Callable[[], str]] = {
            "branch": ctx.branch or "",
            "tag": ctx.tag or "",
            "sha": self.short_sha(),
            "base_ref": base_ref,
            "is_default_branch": "true" if is_default else "false",
            "is_not_default_branch": "false" if is_default else "true",
        }

    def short_sha(self) -> str:
        sha = self.ctx.sha or ""
        n = self.ctx.short_sha_length
        return sha if n >= len(sha) else sha[:n]

    def expand(self, template: str) -> str:
        return render(template, self.globals, self.dates)

    def with_affixes(self, value: str, rule: TagRule) -> str:
        if rule.has("prefix"):
            value = self.expand(rule.attrs["prefix"]) + value
        elif self.flavor.prefix:
            value = self.expand(self.flavor.prefix) + value
        if rule.has("suffix"):
            value += self.expand(rule.attrs["suffix"])
        elif self.flavor.suffix:
            value += self.expand(self.flavor.suffix)
        return value

    def version_input(self, rule: TagRule, replace_slash: bool) -> str | None:
        """The string a semver/pep440/match rule works on: `value=` or the git tag; None = inactive."""
        value = rule.attrs.get("value", "")
        if value:
            text = self.expand(value)
        elif self.ctx.tag is not None:
            text = self.ctx.tag
        else:
            return None
        if rule.type in ("semver", "pep440") and rule.get("match"):
            found = compile_js_regex(rule.attrs["match"]).match(text)
            if found is None:
                self.warnings.append(f"{rule.label}: match {rule.attrs['match']!r} does not match "
                                     f"{text!r}; using it unchanged")
            elif len(found) < 2 or found[1] is None:
                self.warnings.append(f"{rule.label}: match {rule.attrs['match']!r} has no group 1 "
                                     f"for {text!r}")
                return None
            else:
                text = found[1]
        return text.replace("/", "-") if replace_slash else text

    # Each returns (value before sanitising, vote for `latest` in auto mode) or None.
    def semver(self, rule: TagRule) -> tuple[str, bool] | None:
        text = self.version_input(rule, True)
        if text is None:
            return None
        sv = parse_semver(text)
        if sv is None:
            self.warnings.append(f"{rule.label}: {text!r} is not a valid semver, no tag")
            return None
        pattern = rule.attrs["pattern"]
        if sv.is_prerelease and not is_raw_statement(pattern):
            return sv.version, False  # every other pattern collapses to the full version
        return render(pattern, _semver_values(sv)), not sv.is_prerelease

    def pep440(self, rule: TagRule) -> tuple[str, bool] | None:
        text = self.version_input(rule, True)
        if text is None:
            return None
        pv = parse_pep440(text)
        if pv is None:
            self.warnings.append(f"{rule.label}: {text!r} does not conform to PEP 440, no tag")
            return None
        pattern = rule.attrs["pattern"]
        if not pv.is_final:
            return (text if is_raw_statement(pattern) else normalize_pep440(text) or text), False
        values = {"raw": text, "version": normalize_pep440(text) or text, "major": pv.major,
                  "minor": pv.minor, "patch": pv.patch}
        return render(pattern, values), True

    def match(self, rule: TagRule) -> tuple[str, bool] | None:
        text = self.version_input(rule, False)
        if text is None:
            return None
        found = compile_js_regex(rule.attrs["pattern"]).match(text)
        if found is None:
            self.warnings.append(f"{rule.label}: {rule.attrs['pattern']!r} does not match {text!r}")
            return None
        group = int(rule.attrs["group"])
        if group >= len(found) or found[group] is None:
            self.warnings.append(f"{rule.label}: group {group} does not exist for "
                                 f"{rule.attrs['pattern']!r}")
            return None
        return found[group], True

    def ref(self, rule: TagRule) -> tuple[str, bool] | None:
        ref = self.ctx.ref or ""
        event = rule.attrs["event"]
        if event == "branch" and ref.startswith("refs/heads/"):
            return ref[len("refs/heads/"):], False
        if event == "tag" and ref.startswith("refs/tags/"):
            return ref[len("refs/tags/"):], True
        if event == "pr" and ref.startswith("refs/pull/"):
            number = ref[len("refs/pull/"):]
            return (number[:-len("/merge")] if number.endswith("/merge") else number), False
        return None

    def edge(self, rule: TagRule) -> tuple[str, bool] | None:
        branch = self.ctx.branch
        if branch is None:
            return None
        wanted = rule.attrs.get("branch") or self.ctx.default_branch
        if not wanted:
            self.warnings.append(f"{rule.label}: the default branch is unknown; pass it "
                                 "(--default-branch) or write type=edge,branch=NAME")
            return None
        return ("edge", False) if wanted == branch else None

    def raw(self, rule: TagRule) -> tuple[str, bool] | None:
        return self.expand(rule.attrs["value"]), False

    def sha(self, rule: TagRule) -> tuple[str, bool] | None:
        if not self.ctx.sha:
            return None
        return (self.ctx.sha if rule.attrs["format"] == "long" else self.short_sha()), False

    def schedule(self, rule: TagRule) -> tuple[str, bool] | None:
        if "schedule" not in (self.ctx.event or ""):
            return None
        return render(rule.attrs["pattern"], {}, self.dates), False


def _semver_values(sv: SemVer) -> dict[str, str]:
    return {"raw": sv.raw, "version": sv.version, "major": str(sv.major), "minor": str(sv.minor),
            "patch": str(sv.patch), "prerelease": ",".join(sv.prerelease), "build": ",".join(sv.build)}


def _invalid_tag(source: str, produced: str, index: int | None, section: str) -> TagRuleError:
    # No "tags[i]" in the text: the caller (config.rule_error) puts the located prefix in front.
    if len(produced) > 128:
        hint = f"the tag is {len(produced)} characters long; shorten the value or use another rule"
    else:
        hint = "add a prefix (prefix=v) or change the value so the tag starts with a letter or digit"
    return TagRuleError(f"{source} produced {produced!r}, which is not a valid tag: {_TAG_RULE}",
                        index=index, section=section, hint=hint)


def derive_tags(rules: list[TagRule], flavor: Flavor, ctx: TagContext) -> TagResult:
    """The tags for `ctx`: highest priority first (ties in rule order), the first produced value is
    the version, duplicates dropped, `latest` last when the flavor says so."""
    d = _Deriver(flavor, ctx)
    main: str | None = None
    partial: list[str] = []
    latest: bool | None = None
    for rule in sorted(rules, key=lambda r: -r.priority):
        for key in rule.ignored:
            d.warnings.append(f"{rule.label}: attribute {key!r} is not used by type={rule.type}")
        try:
            enabled = d.expand(rule.enable)
            if enabled not in ("true", "false"):
                raise TagRuleError(f"{rule.text!r}: enable gave {enabled!r}, expected true or false",
                                   index=rule.index, section="tags")
            if enabled != "true":
                continue
            produced = getattr(d, rule.type)(rule)
            if produced is None:
                continue
            value, vote = produced
            value = d.with_affixes(value, rule)
        except TemplateError as exc:
            raise TagRuleError(f"{rule.text!r}: {exc}", index=rule.index, section="tags") from None
        if not value:
            continue
        value = sanitize_tag(value)
        if not is_valid_tag(value):
            raise _invalid_tag(repr(rule.text), value, rule.index, "tags")
        if main is None:
            main = value
        elif value != main:
            partial.append(value)
        if latest is None:
            latest = vote if flavor.latest in ("auto", "highest") else flavor.latest == "true"

    if main is None:
        return TagResult(version=None, tags=[], latest=False, warnings=d.warnings)
    rest = list(dict.fromkeys(partial))
    if latest:
        # like metadata-action the flavor affixes reach `latest` unrendered, and only with onlatest
        latest_tag = sanitize_tag((flavor.prefix if flavor.prefix_latest else "") + "latest"
                                  + (flavor.suffix if flavor.suffix_latest else ""))
        if not is_valid_tag(latest_tag):
            index = flavor.prefix_index if flavor.prefix_latest else flavor.suffix_index
            raise _invalid_tag("the latest tag (flavor prefix/suffix with onlatest=true)", latest_tag,
                               index, "flavor")
        rest = [t for t in rest if t != latest_tag]  # never push `latest` twice
        if latest_tag != main:
            rest.append(latest_tag)
    return TagResult(version=main, tags=[main, *rest], latest=bool(latest), warnings=d.warnings,
                     latest_if_highest=bool(latest) and flavor.latest == "highest")


_GIT_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def _git_tag_problem(name: str) -> str | None:
    if _GIT_REF_FORBIDDEN.search(name):
        return "spaces, control characters and ~ ^ : ? * [ \\ are not allowed"
    if ".." in name or "@{" in name or "//" in name:
        return "'..', '@{' and '//' are not allowed"
    if name == "@" or name.startswith("/") or name.endswith("/") or name.endswith("."):
        return "it must not be '@', start or end with '/', or end with '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "no part may start with '.' or end with '.lock'"
    return None


def _rule_input(version: str, rule: TagRule) -> str:
    """VERSION as a semver/pep440 rule sees it (after its match= and '/' -> '-')."""
    if rule.get("match"):
        found = compile_js_regex(rule.attrs["match"]).match(version)
        if found is not None and len(found) > 1 and found[1] is not None:
            version = found[1]
    return version.replace("/", "-")


SEMVER_HELP = ("use MAJOR.MINOR.PATCH with an optional -prerelease and +build, e.g. 1.2.0, v1.2.3 or "
               "1.3.0-rc.1 (a leading lower-case v is allowed; 'V' is not)")
PEP440_HELP = ("use a PEP 440 version, e.g. 1.2, 1.2.3, 1.3.0rc1, 1.2.post1 or 1.3.dev4 "
               "(a leading v is allowed)")


def validate_release_version(version: str, rules: list[TagRule]) -> None:
    """Check a VERSION given on the command line against the rules that will read it.

    Enabled semver rules without their own value= need strict semver, pep440 rules need PEP 440;
    otherwise anything that can name a git tag is accepted.  Raises UsageError.
    """
    if not isinstance(version, str) or not version.strip():
        raise UsageError("the version must not be empty", hint=SEMVER_HELP)
    readers = [r for r in rules if r.type in ("semver", "pep440") and r.enable != "false"
               and not r.attrs.get("value")]
    for kind, check, help_text in (("semver", parse_semver, SEMVER_HELP),
                                   ("pep440", parse_pep440, PEP440_HELP)):
        for rule in (r for r in readers if r.type == kind):
            candidate = _rule_input(version, rule)
            if check(candidate) is None:
                what = "a semantic version" if kind == "semver" else "a PEP 440 version"
                seen = "" if candidate == version else f" (read as {candidate!r} by {rule.label})"
                raise UsageError(f"version {version!r}{seen} is not {what}: {help_text}")
    problem = _git_tag_problem(version)
    if problem:
        raise UsageError(f"version {version!r} cannot name a git tag: {problem}")
