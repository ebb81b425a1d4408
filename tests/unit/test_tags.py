"""Tag derivation: docker/metadata-action compatibility plus our stricter checks.

Most tables are ported from metadata-action's __tests__/meta.test.ts (row names kept, one image,
bare tags) and from what metadata-action itself answered for the edge cases (recorded by hand).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipeline.errors import TagRuleError, UsageError
from pipeline.model.tags import (
    DEFAULT_FLAVOR_LINES,
    DEFAULT_TAG_LINES,
    Flavor,
    TagContext,
    TagResult,
    context_for_version,
    derive_tags,
    is_prerelease,
    is_valid_tag,
    parse_flavor,
    parse_tag_rule,
    parse_tag_rules,
    sanitize_tag,
    validate_release_version,
)
from pipeline.model.tags.jsregex import JsRegexError, compile_js_regex
from pipeline.model.tags.moment import format_moment
from pipeline.model.tags.pep440 import normalize_pep440, parse_pep440
from pipeline.model.tags.semver import parse_semver
from pipeline.model.tags.template import TemplateError, escape, is_raw_statement, render

NOW = datetime(2020, 1, 10, 0, 30, tzinfo=timezone.utc)
SHA_DEV = "860c1904a1ce19322e91ac35af1ab07466440c37"
SHA_MASTER = "266574110acf203503badf966df2ea24b5d732d7"
SHA_PR = "a9c8c5828b91be19d9728548b24759e352367ef1"
SHA_INVALID = "983315b5e8d46e46fc4c49869e85e7ee5fb289ba"
# metadata-action's default when `tags` is empty (ours is DEFAULT_TAG_LINES: three semver lines)
ACTION_DEFAULT = ["type=schedule", "type=ref,event=branch", "type=ref,event=tag", "type=ref,event=pr"]


def gh(ref: str, sha: str = SHA_DEV, event: str = "push", **kw) -> TagContext:
    kw.setdefault("default_branch", "master")
    return TagContext(ref=ref, sha=sha, event=event, now=NOW, **kw)


# The fixtures of metadata-action's tests, as contexts.
EVENTS = {
    "push_dev": gh("refs/heads/dev"),
    "push_master": gh("refs/heads/master", SHA_MASTER),
    "push_invalidchars": gh("refs/heads/my/feature#1245", SHA_INVALID),
    "tag_release1": gh("refs/tags/release1"),
    "tag_20200110-RC2": gh("refs/tags/20200110-RC2"),
    "tag_v1.1.1": gh("refs/tags/v1.1.1"),
    "tag_v1.1.1_baseref": gh("refs/tags/v1.1.1", base_ref="refs/heads/master"),
    "tag_v2.0.8-beta.67": gh("refs/tags/v2.0.8-beta.67"),
    "tag_sometag": gh("refs/tags/sometag"),
    "tag_p1-v1.0.0": gh("refs/tags/p1/v1.0.0"),
    "tag_1.2": gh("refs/tags/1.2"),
    "tag_1.1beta2": gh("refs/tags/1.1beta2"),
    "tag_1.0dev4": gh("refs/tags/1.0dev4"),
    "tag_1.2.3rc2": gh("refs/tags/1.2.3rc2"),
    "tag_v1.2.3rc2": gh("refs/tags/v1.2.3rc2"),
    "tag_1.2post1": gh("refs/tags/1.2post1"),
    "pull_request": gh("refs/pull/15/merge", SHA_PR, "pull_request", base_ref="master"),
    "schedule": gh("refs/heads/master", event="schedule"),
    "release": gh("refs/tags/v1.1.1", event="release"),
}


def derive(lines, ctx, flavor=()) -> TagResult:
    return derive_tags(parse_tag_rules(list(lines)), parse_flavor(list(flavor)), ctx)


# (row, event, tags, flavor, expected tags) -- expected[0] is the version; latest is derived
# from whether "latest" (or its onlatest form) closes the list.
UPSTREAM = [
    ("push01", "push_dev", ACTION_DEFAULT, [], ["dev"]),
    ("push02", "push_master", ["type=edge"], [], ["edge"]),
    ("push03", "push_master", ACTION_DEFAULT, [], ["master"]),
    ("push07", "push_dev", ["type=ref,event=branch", "type=sha"], [], ["dev", "sha-860c190"]),
    ("push08", "push_master", ["type=edge", "type=sha"], [], ["edge", "sha-2665741"]),
    ("push09", "push_dev", ["type=edge,branch=dev", "type=sha"], [], ["edge", "sha-860c190"]),
    ("push10", "push_master", ["type=edge,branch=dev", "type=sha"], [], ["sha-2665741"]),
    ("push11", "push_invalidchars", ["type=edge", "type=sha"], [], ["sha-983315b"]),
    ("push12", "push_invalidchars",
     ["type=semver,pattern={{version}}", "type=pep440,pattern={{version}}", "type=edge"], [], []),
    ("push13", "push_master", ["type=ref,priority=2000,event=branch", "type=edge"], [],
     ["master", "edge"]),
    ("push14", "push_master", ["type=semver,pattern={{version}},value=v1.2.3",
                               "type=pep440,pattern={{version}},value=v1.2.3", "type=edge"], [],
     ["1.2.3", "edge", "latest"]),
    ("push15", "push_master", ["type=match,pattern=v(.*),group=1,value=v1.2.3", "type=edge"], [],
     ["1.2.3", "edge", "latest"]),
    ("push16", "push_master", ["type=match,enable=false,pattern=v(.*),group=1,value=v1.2.3",
                               "type=edge"], [], ["edge"]),
    ("push17", "push_master", [
        "type=raw,value=mytag-{{branch}}",
        "type=raw,value=mytag-{{date 'YYYYMMDD'}}",
        "type=raw,value=mytag-cd-{{commit_date 'YYYYMMDD'}}",
        "type=raw,value=mytag-{{date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}",
        "type=raw,value=mytag-tag-{{tag}}",
        "type=raw,value=mytag-baseref-{{base_ref}}",
        "type=raw,value=mytag-defbranch,enable={{is_default_branch}}"], [],
     ["mytag-master", "mytag-20200110", "mytag-cd-20200110", "mytag-20200110-093000", "mytag-tag-",
      "mytag-baseref-", "mytag-defbranch"]),
    ("push18", "push_dev", ["type=ref,event=branch", "type=sha,format=long"], [],
     ["dev", f"sha-{SHA_DEV}"]),
    ("push19", "push_dev", ["type=edge,branch=master", "type=ref,event=branch,enable=false",
                            "type=sha,format=long", "type=raw,value=defbranch,enable={{is_default_branch}}"],
     [], [f"sha-{SHA_DEV}"]),
    ("tag01", "tag_release1", ACTION_DEFAULT, [], ["release1", "latest"]),
    ("tag02", "tag_20200110-RC2", ACTION_DEFAULT, [], ["20200110-RC2", "latest"]),
    ("tag03", "tag_20200110-RC2", [r"type=match,pattern=\d{8}"], ["latest=false"], ["20200110"]),
    ("tag04", "tag_20200110-RC2", ["type=match,pattern=(.*)-RC,group=1"], ["latest=false"], ["20200110"]),
    ("tag05", "tag_v1.1.1", [r'type=match,"pattern=\d.\d.\d"'], [], ["1.1.1", "latest"]),
    ("tag06", "tag_v1.1.1", [r'type=match,"pattern=^v(\d.\d.\d)$",group=1'], [], ["1.1.1", "latest"]),
    ("tag07", "tag_v2.0.8-beta.67", [r'type=match,"pattern=\d.\d.\d-(alpha|beta).\d+"'], [],
     ["2.0.8-beta.67", "latest"]),
    ("tag08", "tag_v2.0.8-beta.67", [r'type=match,"pattern=\d.\d"'], [], ["2.0", "latest"]),
    ("tag09", "tag_v2.0.8-beta.67", ['type=match,"pattern=v(.*)-beta.(.*)",group=1',
                                     'type=match,"pattern=v(.*)-beta.(.*)",group=2'], [],
     ["2.0.8", "67", "latest"]),
    ("tag10", "tag_sometag", [r'type=match,"pattern=\d.\d"'], [], []),
    ("tag11", "tag_v1.1.1", DEFAULT_TAG_LINES, [], ["1.1.1", "1.1", "1", "latest"]),
    ("tag12", "tag_v1.1.1", ["type=semver,pattern={{version}}",
                             "type=semver,pattern={{major}}.{{minor}}.{{patch}}"], [], ["1.1.1", "latest"]),
    ("tag13", "tag_v2.0.8-beta.67", ["type=semver,pattern={{major}}.{{minor}}",
                                     "type=semver,pattern={{major}}"], [], ["2.0.8-beta.67"]),
    ("tag14", "tag_sometag", ["type=ref,event=tag", *DEFAULT_TAG_LINES], ["latest=false"], ["sometag"]),
    ("tag15", "tag_v2.0.8-beta.67", ["type=raw,priority=2000,foo", "type=semver,pattern={{version}}",
                                     r'type=match,"pattern=\d.\d"'], [], ["foo", "2.0.8-beta.67", "2.0"]),
    ("tag16", "tag_v1.1.1", ["type=raw,priority=2000,foo", "type=ref,event=tag", "type=edge"], [],
     ["foo", "v1.1.1"]),
    ("tag17", "tag_p1-v1.0.0", [r'type=match,"pattern=/^v(\d.\d.\d)$/ig",group=1',
                                r"type=match,pattern=\d.\d.\d", r"type=match,pattern=\d.\d",
                                "type=ref,event=pr", "type=sha"], [],
     ["1.0.0", "1.0", "sha-860c190", "latest"]),
    ("tag18", "tag_p1-v1.0.0", [r"type=match,pattern=p1/v(\d.\d.\d),group=1",
                                r"type=match,pattern=p1/v(\d.\d),group=1",
                                r"type=match,pattern=p1/v(\d.\d),group=3",
                                "type=ref,event=pr", "type=sha"], [],
     ["1.0.0", "1.0", "sha-860c190", "latest"]),
    ("tag19", "tag_p1-v1.0.0", [r"type=match,pattern=p1/v(\d.\d.\d),group=1",
                                r"type=match,pattern=p1/v(\d.\d),group=1,suffix=",
                                "type=ref,event=pr", "type=sha"], ["suffix=-dev"],
     ["1.0.0-dev", "1.0", "sha-860c190-dev", "latest"]),
    ("tag20", "tag_v1.1.1_baseref", ["type=raw,{{tag}}-{{sha}}-foo", "type=raw,{{base_ref}}-foo",
                                     "type=raw,defbranch-foo,enable={{is_default_branch}}"], [],
     ["v1.1.1-860c190-foo", "master-foo"]),
    ("tag21", "tag_v1.1.1", ["type=semver,pattern={{version}}",
                             "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
     ["suffix=-dev,onlatest=true"], ["1.1.1-dev", "latest-dev"]),
    ("tag22", "tag_v1.1.1", ["type=semver,pattern={{version}}",
                             "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
     ["prefix=foo-,onlatest=true", "suffix=-dev,onlatest=true"], ["foo-1.1.1-dev", "foo-latest-dev"]),
    ("tag23", "tag_v1.1.1", ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{major}}.{{minor}}"],
     [], ["v1.1.1", "1.1", "latest"]),
    ("tag24", "tag_1.2", ["type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}.{{minor}}"],
     [], ["1.2", "latest"]),
    ("tag25", "tag_1.1beta2", ["type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
     [], ["1.1b2"]),
    ("tag26", "tag_1.0dev4", ["type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
     [], ["1.0.dev4"]),
    ("tag27", "tag_1.2.3rc2", ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{version}}",
                               "type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
     [], ["1.2.3rc2"]),
    ("tag28", "tag_v1.1.1", ["type=pep440,pattern={{version}}",
                             "type=pep440,pattern={{major}}.{{minor}}.{{patch}}",
                             "type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
     [], ["1.1.1", "1.1", "1", "latest"]),
    ("tag29", "tag_1.2post1", ["type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}.{{minor}}",
                               "type=pep440,pattern={{major}}"], [], ["1.2.post1"]),
    ("tag30", "tag_sometag", ["type=ref,event=tag", "type=pep440,pattern={{version}}",
                              "type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
     ["latest=false"], ["sometag"]),
    ("tag31", "tag_v2.0.8-beta.67", ["type=semver,pattern={{raw}}"], [], ["v2.0.8-beta.67"]),
    ("tag32", "tag_v1.2.3rc2", ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{major}}.{{minor}}"],
     [], ["v1.2.3rc2", "1.2.3rc2"]),
    ("latest01", "tag_release1", [r'type=match,"pattern=^release\d{1,2}"'], [], ["release1", "latest"]),
    ("latest02", "tag_20200110-RC2", [r'type=match,"pattern=^\d+-RC\d{1,2}"'], [],
     ["20200110-RC2", "latest"]),
    ("latest03", "tag_20200110-RC2", [r"type=match,pattern=\d{8}"], [], ["20200110", "latest"]),
    ("latest04", "tag_v1.1.1", [r'type=match,"pattern=\d.\d.\d"'], [], ["1.1.1", "latest"]),
    ("latest05", "tag_v1.1.1", ACTION_DEFAULT, [], ["v1.1.1", "latest"]),
    ("latest06", "tag_v2.0.8-beta.67", [r'type=match,"pattern=\d.\d.\d"'], [], ["2.0.8", "latest"]),
    ("latest07", "tag_v1.1.1", ["type=ref,event=tag"], ["latest=false"], ["v1.1.1"]),
    ("pr01", "pull_request", ACTION_DEFAULT, [], ["pr-15"]),
    ("pr03", "pull_request", ["type=ref,event=pr", "type=sha"], [], ["pr-15", "sha-a9c8c58"]),
    ("pr04", "pull_request", ["type=sha,priority=2000", "type=ref,event=pr"], [], ["sha-a9c8c58", "pr-15"]),
    ("pr05", "pull_request", ["type=ref,event=pr"], ["prefix=glo-", "suffix=-bal"], ["pr-15-bal"]),
    ("pr06", "pull_request", ["type=ref,event=pr,prefix="], ["prefix=glo-", "suffix=-bal"], ["15-bal"]),
    ("pr09", "pull_request", ["type=ref,event=tag", "type=ref,event=pr", "type=ref,event=branch",
                              "type=sha", "type=sha,format=long"], [],
     ["pr-15", "sha-a9c8c58", f"sha-{SHA_PR}"]),
    ("pr11", "pull_request", ["type=raw,value=mytag-{{base_ref}}",
                              "type=raw,mytag-defbranch,enable={{is_default_branch}}"], [], ["mytag-master"]),
    ("pr12", "pull_request", ["type=raw,value={{commit_date YYYY-MM-DD-HHmmSS}}"], [],
     ["2020-01-10T00-30-00Z"]),
    ("pr12-head-sha", "pull_request", ["type=raw,value=src-{{commit_date YYYY-MM-DD}}"], [],
     ["src-2020-01-10T00-30-00Z"]),
    ("schedule01", "schedule", ACTION_DEFAULT, [], ["nightly", "master"]),
    ("schedule02", "schedule", ["type=schedule,pattern={{date 'YYYYMMDD'}}",
                                "type=schedule,pattern=source-date-{{commit_date 'YYYY-MM-DD'}}"], [],
     ["20200110", "source-date-2020-01-10"]),
    ("schedule03", "schedule", ["type=schedule,pattern={{date 'YYYYMMDD-HHmmss'}}"], [], ["20200110-003000"]),
    ("schedule05", "schedule", ["type=schedule", "type=sha"], [], ["nightly", "sha-860c190"]),
    ("schedule06", "schedule", ["type=schedule", "type=sha,priority=2000",
                                "type=raw,value=defbranch,enable={{is_default_branch}}"], [],
     ["sha-860c190", "nightly", "defbranch"]),
    ("schedule07", "schedule", ["type=schedule"], ["prefix=glo-", "suffix=-bal"], ["glo-nightly-bal"]),
    ("schedule08", "schedule", ["type=schedule,pattern={{date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}",
                                "type=schedule,pattern=src-{{commit_date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}"],
     [], ["20200110-093000", "src-20200110-093000"]),
    ("release01", "release", ACTION_DEFAULT, [], ["v1.1.1", "latest"]),
    ("release02", "release", ["type=ref,event=tag", "type=raw,value=baseref-{{base_ref}}",
                              "type=raw,value=defbranch,enable={{is_default_branch}}"], [],
     ["v1.1.1", "baseref-", "latest"]),
    ("release03", "release", ["type=raw,value=src-{{commit_date 'YYYYMMDD-HHmmss'}}",
                              "type=raw,value={{date 'YYYYMMDD-HHmmss'}}"], [],
     ["src-20200110-003000", "20200110-003000"]),
    ("raw01", "push_dev", ["type=ref,event=branch", "type=raw,my", "type=raw,custom", "type=raw,tags"], [],
     ["dev", "my", "custom", "tags"]),
    ("raw03", "tag_release1", ["type=ref,event=tag", "type=raw,my", "type=raw,custom", "type=raw,tags"], [],
     ["release1", "my", "custom", "tags", "latest"]),
    ("raw04", "tag_20200110-RC2", [r"type=match,pattern=\d{8}", "type=raw,my", "type=raw,custom",
                                   "type=raw,tags"], ["latest=false"], ["20200110", "my", "custom", "tags"]),
    ("raw05", "tag_v1.1.1", [*DEFAULT_TAG_LINES, "type=raw,my", "type=raw,custom", "type=raw,tags"], [],
     ["1.1.1", "1.1", "1", "my", "custom", "tags", "latest"]),
    ("raw06", "tag_v1.1.1", ["type=raw,my", "type=raw,custom", "type=raw,tags"], [], ["my", "custom", "tags"]),
    ("raw07", "push_dev", ["type=ref,priority=90,event=branch", "type=raw,my", "type=raw,custom",
                           "type=raw,tags"], ["latest=true"], ["my", "custom", "tags", "dev", "latest"]),
    ("raw08", "push_dev", [r"type=match,pattern=\d{8}", "type=raw,my", "type=raw,custom", "type=raw,tags"],
     ["latest=false"], ["my", "custom", "tags"]),
    ("raw09", "push_dev", [r"type=match,pattern=\d{8}", "type=raw,my,prefix=foo-,suffix=-bar",
                           "type=raw,custom", "type=raw,tags"], ["latest=false", "prefix=glo-", "suffix=-bal"],
     ["foo-my-bar", "glo-custom-bal", "glo-tags-bal"]),
    ("raw10", "push_dev", ["type=raw,foo", "type=raw,bar,enable=false", "type=raw,baz,enable=true"],
     ["latest=false"], ["foo", "baz"]),
]


@pytest.mark.parametrize("row,event,tags,flavor,expected", UPSTREAM, ids=[r[0] for r in UPSTREAM])
def test_upstream_rows(row, event, tags, flavor, expected):
    result = derive(tags, EVENTS[event], flavor)
    assert result.tags == expected
    assert result.version == (expected[0] if expected else None)
    assert result.latest == bool(expected and expected[-1].startswith(("latest", "foo-latest")))


# --- the headline cases with our defaults ----------------------------------------------------

DEFAULT_RULES = parse_tag_rules(DEFAULT_TAG_LINES)
DEFAULT_FLAVOR = parse_flavor(DEFAULT_FLAVOR_LINES)


@pytest.mark.parametrize("version,tags,latest", [
    ("1.2.3", ["1.2.3", "1.2", "1", "latest"], True),
    ("v1.2.3", ["1.2.3", "1.2", "1", "latest"], True),
    ("1.3.0-rc.1", ["1.3.0-rc.1"], False),
    ("v2.0.8-beta.67", ["2.0.8-beta.67"], False),
    ("v0.1.2", ["0.1.2", "0.1", "0", "latest"], True),  # no special case for 0.x
    ("0.0.3", ["0.0.3", "0.0", "0", "latest"], True),
    ("v1.2.3+build.5", ["1.2.3", "1.2", "1", "latest"], True),  # build metadata ignored
    ("v1.2.3-rc.1+build.5", ["1.2.3-rc.1"], False),
])
def test_defaults_for_a_version(version, tags, latest):
    result = derive_tags(DEFAULT_RULES, DEFAULT_FLAVOR, context_for_version(version))
    assert (result.version, result.tags, result.latest) == (tags[0], tags, latest)


@pytest.mark.parametrize("version", ["1.2", "v1.2", "V1.2.3", "=1.2.3", "v01.2.3", "sometag", "release1"])
def test_invalid_semver_gives_no_tag_and_a_warning(version):
    result = derive_tags(DEFAULT_RULES, DEFAULT_FLAVOR, context_for_version(version))
    assert result == TagResult(version=None, tags=[], latest=False, warnings=result.warnings)
    assert any("not a valid semver" in w for w in result.warnings)


# --- semver / pep440 patterns --------------------------------------------------------------

@pytest.mark.parametrize("ref,pattern,expected", [
    ("v2.0.8-beta.67", "v{{version}}", "2.0.8-beta.67"),  # prerelease: the pattern's v is lost
    ("v2.0.8-beta.67", "v{{major}}", "2.0.8-beta.67"),
    ("v2.0.8-beta.67", "{{ raw }}", "v2.0.8-beta.67"),
    ("v2.0.8-beta.67", "{{ raw}}", "v2.0.8-beta.67"),
    ("v2.0.8-beta.67", "{{ raw }}.{{ version }}", "2.0.8-beta.67"),  # not a lone {{raw}}
    ("v1.2.3", "v{{version}}", "v1.2.3"),
    ("v1.2.3", "v{{major}}.{{minor}}", "v1.2"),
    ("v1.2.3+build.5", "{{raw}}", "v1.2.3-build.5"),  # '+' sanitised to '-'
    ("1.2.3", "{{major}}.{{minor}}.{{patch}}-{{raw}}", "1.2.3-1.2.3"),
])
def test_semver_patterns(ref, pattern, expected):
    result = derive([f"type=semver,pattern={pattern}"], gh(f"refs/tags/{ref}"))
    assert result.tags[0] == expected


@pytest.mark.parametrize("ref,pattern,expected,latest", [
    ("2.0", "{{major}}.{{minor}}.{{patch}}", "2.0.0", True),  # missing parts are 0
    ("1.0.0-rc.1", "{{version}}", "1.0.0rc1", False),
    ("1.1beta2", "{{raw}}", "1.1beta2", False),
    ("1.2.3+local.7", "{{version}}", "1.2.3-local-7", True),
    ("0.1.2", "{{major}}", "0", True),
    ("V1.2.3", "{{version}}", "1.2.3", True),  # PEP 440 is case-insensitive, V allowed
    ("1.01", "{{version}}", "1.1", True),
    ("1!2.0", "{{major}}", "2", True),
])
def test_pep440_patterns(ref, pattern, expected, latest):
    result = derive([f"type=pep440,pattern={pattern}"], gh(f"refs/tags/{ref}"))
    assert (result.tags[0], result.latest) == (expected, latest)


def test_pep440_zero_major_gets_all_floating_tags():
    lines = ["type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}.{{minor}}",
             "type=pep440,pattern={{major}}"]
    assert derive(lines, gh("refs/tags/0.1.2")).tags == ["0.1.2", "0.1", "0", "latest"]


def test_pep440_invalid_warns():
    result = derive(["type=pep440,pattern={{version}}"], gh("refs/tags/sometag"))
    assert result.tags == [] and "PEP 440" in result.warnings[0]


def test_semver_match_attribute_strips_a_prefix_before_validation():
    lines = ["type=semver,pattern={{version}},match=docker-(.*)",
             "type=semver,pattern={{major}}.{{minor}},match=docker-(.*)"]
    assert derive(lines, gh("refs/tags/docker-23.0.1")).tags == ["23.0.1", "23.0", "latest"]
    # a prerelease stays narrow even through match=
    assert derive(lines, gh("refs/tags/docker-23.1.0-rc.1")).tags == ["23.1.0-rc.1"]


def test_semver_match_attribute_on_slashed_tag():
    lines = [r"type=semver,pattern={{major}}.{{minor}},match=^app/v(\d+\.\d+\.\d+)$"]
    assert derive(lines, gh("refs/tags/app/v1.5.0")).tags == ["1.5", "latest"]


def test_match_attribute_only_applies_to_semver_and_pep440():
    rule = parse_tag_rule("type=match,pattern=v(.*),group=1,match=nothing", 0)
    assert rule.ignored == ("match",)
    assert derive_tags([rule], Flavor(), gh("refs/tags/v1.2")).tags == ["1.2", "latest"]


def test_semver_slash_in_tag_is_invalid_without_match():
    result = derive(["type=semver,pattern={{version}}"], gh("refs/tags/p1/v1.0.0"))
    assert result.tags == [] and "'p1-v1.0.0' is not a valid semver" in result.warnings[0]


def test_semver_inactive_on_branch_without_value():
    assert derive(DEFAULT_TAG_LINES, EVENTS["push_master"]).tags == []


# --- ref / edge / sha / schedule -----------------------------------------------------------

@pytest.mark.parametrize("branch,expected", [
    ("my/feature#1245", "my-feature-1245"),
    ("releases/v1", "releases-v1"),
    ("banner-utils-test-#5", "banner-utils-test--5"),
    ("dependabot/npm_and_yarn/@types/node-1.2.3", "dependabot-npm_and_yarn-types-node-1.2.3"),
    ("fix/über--x", "fix-ber--x"),
    ("Feature/CAPS", "Feature-CAPS"),  # tag case is kept
])
def test_branch_sanitisation(branch, expected):
    assert derive(["type=ref,event=branch"], gh(f"refs/heads/{branch}")).tags == [expected]


def test_ref_tag_keeps_v_and_votes_latest_even_for_prerelease():
    assert derive(["type=ref,event=tag"], EVENTS["tag_v2.0.8-beta.67"]).tags == ["v2.0.8-beta.67", "latest"]
    assert derive(["type=ref,event=tag"], EVENTS["tag_p1-v1.0.0"]).tags == ["p1-v1.0.0", "latest"]


def test_edge_only_on_default_branch_and_warns_when_unknown():
    assert derive(["type=edge"], gh("refs/heads/main", default_branch="main")).tags == ["edge"]
    assert derive(["type=edge"], gh("refs/heads/dev", default_branch="main")).tags == []
    unknown = derive(["type=edge"], gh("refs/heads/main", default_branch=None))
    assert unknown.tags == [] and "default branch is unknown" in unknown.warnings[0]


def test_short_sha_length_is_a_context_setting():
    ctx = gh("refs/heads/dev", short_sha_length=12)
    assert derive(["type=sha", "type=raw,{{sha}}"], ctx).tags == ["860c1904a1ce", "sha-860c1904a1ce"]


def test_sha_without_sha_produces_nothing():
    assert derive(["type=sha"], gh("refs/heads/dev", sha=None)).tags == []


def test_schedule_only_on_schedule_events():
    assert derive(["type=schedule"], EVENTS["push_master"]).tags == []
    assert derive(["type=schedule,pattern=nightly-{{date 'YYYY-MM-DD'}}"], EVENTS["schedule"]).tags == [
        "nightly-2020-01-10"]


# --- flavor, prefixes, priorities, enable --------------------------------------------------

def test_flavor_prefix_reaches_latest_only_with_onlatest():
    ctx = context_for_version("1.2.3")
    assert derive(["type=semver,pattern={{version}}"], ctx, ["prefix=v"]).tags == ["v1.2.3", "latest"]
    assert derive(["type=semver,pattern={{version}}"], ctx, ["suffix=-alpine,onlatest=true"]).tags == [
        "1.2.3-alpine", "latest-alpine"]


def test_entry_prefix_overrides_flavor_even_when_empty():
    ctx = context_for_version("1.2.3")
    lines = ["type=semver,pattern={{version}},prefix=", "type=semver,pattern={{major}},prefix=r"]
    assert derive(lines, ctx, ["prefix=v", "latest=false"]).tags == ["1.2.3", "r1"]


def test_latest_true_and_false():
    assert derive(["type=ref,event=branch"], EVENTS["push_dev"], ["latest=true"]).tags == ["dev", "latest"]
    # latest=false: an explicit raw latest is still an ordinary tag
    assert derive(["type=raw,value=latest"], EVENTS["push_dev"], ["latest=false"]).tags == ["latest"]


def test_latest_never_twice_and_always_last():
    lines = ["type=semver,pattern={{version}}", "type=raw,value=latest", "type=raw,value=stable"]
    result = derive(lines, context_for_version("1.2.3"))
    assert result.tags == ["1.2.3", "stable", "latest"] and result.latest


def test_first_producing_rule_decides_latest():
    # tag16: a raw entry above the tag decides "no"; raw03: the tag entry first decides "yes"
    assert derive(["type=raw,priority=2000,foo", "type=ref,event=tag"], EVENTS["tag_v1.1.1"]).latest is False
    assert derive(["type=ref,event=tag", "type=raw,foo"], EVENTS["tag_v1.1.1"]).latest is True
    # a disabled entry cannot decide
    lines = ["type=raw,priority=2000,foo,enable=false", "type=ref,event=tag"]
    assert derive(lines, EVENTS["tag_v1.1.1"]).tags == ["v1.1.1", "latest"]


def test_priority_ties_keep_rule_order():
    lines = ["type=raw,b,priority=5", "type=raw,a,priority=5", "type=raw,c,priority=7"]
    assert derive(lines, EVENTS["push_dev"]).tags == ["c", "b", "a"]


def test_enable_is_default_branch():
    line = ["type=raw,value=main-only,enable={{is_default_branch}}"]
    assert derive(line, gh("refs/heads/master")).tags == ["main-only"]
    assert derive(line, gh("refs/heads/dev")).tags == []
    # false for a tag push even when the tag is on the default branch
    assert derive(line, context_for_version("1.2.3", default_branch="master")).tags == []
    assert derive(["type=raw,x,enable={{is_not_default_branch}}"], gh("refs/heads/dev")).tags == ["x"]


def test_enable_template_must_give_true_or_false():
    with pytest.raises(TagRuleError, match="expected true or false"):
        derive(["type=raw,x,enable={{branch}}"], EVENTS["push_dev"])


def test_duplicates_are_removed_keeping_first():
    lines = ["type=semver,pattern={{major}}", "type=semver,pattern={{major}}", "type=raw,1", "type=raw,x",
             "type=raw,x"]
    assert derive(lines, context_for_version("1.0.0")).tags == ["1", "x", "latest"]


def test_no_tag_at_all_is_not_an_error():
    assert derive(["type=ref,event=pr"], EVENTS["push_dev"]) == TagResult(None, [], False)


# --- beyond the action: invalid tags are refused --------------------------------------------

def test_invalid_tag_names_the_rule():
    with pytest.raises(TagRuleError) as info:
        derive(["type=semver,pattern={{version}}", "type=raw,x", "type=raw,y", "type=raw,value=-foo"],
               context_for_version("1.2.3"))
    exc = info.value
    assert (exc.index, exc.section) == (3, "tags")
    # no "tags[3]" in the text: config.rule_error adds the located "tags[3]: " prefix
    assert exc.message == ("'type=raw,value=-foo' produced '-foo', which is not a valid tag: "
                           "must start with a letter, digit or '_' and be at most 128 characters")


def test_too_long_tag_is_refused():
    long_branch = "feature/" + "x" * 200
    with pytest.raises(TagRuleError, match="not a valid tag") as info:
        derive(["type=ref,event=branch"], gh(f"refs/heads/{long_branch}"))
    assert "208 characters" in info.value.hint


def test_invalid_latest_from_flavor_names_the_flavor_line():
    with pytest.raises(TagRuleError) as info:
        derive(["type=semver,pattern={{version}},prefix="], context_for_version("1.2.3"),
               ["latest=auto", "prefix=.,onlatest=true"])
    assert (info.value.section, info.value.index) == ("flavor", 1)


@pytest.mark.parametrize("tag,ok", [("1.2.3", True), ("_x", True), ("a" * 128, True), ("a" * 129, False),
                                    ("-foo", False), (".foo", False), ("", False), ("a+b", False)])
def test_is_valid_tag(tag, ok):
    assert is_valid_tag(tag) is ok


def test_sanitize_collapses_runs():
    assert sanitize_tag("a/#b+c") == "a-b-c"


# --- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line,rtype,attrs", [
    ("type=schedule,enable=true,pattern={{date 'YYYYMMDD'}}", "schedule",
     {"priority": "1000", "enable": "true", "pattern": "{{date 'YYYYMMDD'}}"}),
    ("type=semver,priority=1,enable=true,pattern={{version}},value=v1.0.0", "semver",
     {"priority": "1", "enable": "true", "pattern": "{{version}}", "value": "v1.0.0"}),
    (r'type=match,enable=true,"pattern=^v(\d.\d.\d)$",group=1', "match",
     {"priority": "800", "enable": "true", "pattern": r"^v(\d.\d.\d)$", "group": "1", "value": ""}),
    ("type=edge", "edge", {"priority": "700", "enable": "true", "branch": ""}),
    ("type=ref,event=pr", "ref", {"priority": "600", "enable": "true", "prefix": "pr-", "event": "pr"}),
    ("acustomtag", "raw", {"priority": "200", "enable": "true", "value": "acustomtag"}),
    ("type=raw,foo", "raw", {"priority": "200", "enable": "true", "value": "foo"}),
    ("type=sha,prefix=", "sha", {"priority": "100", "enable": "true", "prefix": "", "format": "short"}),
    ("type=sha,format=long", "sha", {"priority": "100", "enable": "true", "prefix": "sha-", "format": "long"}),
    (" TYPE = raw , Value = a=b ", "raw", {"priority": "200", "enable": "true", "value": "a=b"}),
    ('type=raw,"value=a,b"', "raw", {"priority": "200", "enable": "true", "value": "a,b"}),
])
def test_parse_tag_rule(line, rtype, attrs):
    rule = parse_tag_rule(line, 4)
    assert (rule.type, dict(rule.attrs), rule.index, rule.text) == (rtype, attrs, 4, line)
    assert rule.priority == int(attrs["priority"])


@pytest.mark.parametrize("line,message", [
    ("type=semver", "type=semver needs a pattern"),
    ("type=pep440", "type=pep440 needs a pattern"),
    ("type=match", "type=match needs a pattern"),
    ("type=match,enable=true,pattern=v(.*),group=foo", "group must be a whole number"),
    ("type=ref", "type=ref needs event="),
    ("type=ref,event=foo", "event must be branch, tag or pr"),
    ("type=raw", "type=raw needs a value"),
    ("type=sha,format=foo", "format must be short or long"),
    ("type=foo", "unknown tag type 'foo'"),
    ("type=raw,value=x,priority=high", "priority must be a number"),
    ("type=raw,value=x,enable=yes", "enable must be true, false"),
    ("", "empty tag rule"),
    ('type=raw,value="x"', "a quote may only start a field"),
    ('type=raw,"value=x"y', "after a closing quote"),
    ('type=raw,"value=x', "not closed"),
    ("type=raw,value={{nope}}", "unknown expression 'nope'"),
    ("type=semver,pattern={{branch}}", "unknown expression 'branch'"),
    ("type=raw,value={{#if x}}y{{/if}}", "not supported"),
    ("type=raw,value={{date 'N'}}", "era"),
    ("type=raw,value={{date 'YYYY' tz='Mars/Base'}}", "unknown time zone"),
    ("type=match,pattern=(unclosed", "invalid regular expression"),
    ("type=match,pattern=/x/q", "invalid regular expression flags"),
])
def test_parse_errors(line, message):
    with pytest.raises(TagRuleError, match=None) as info:
        parse_tag_rule(line, 7)
    assert message in info.value.message
    assert (info.value.index, info.value.section) == (7, "tags")


def test_unknown_attributes_are_ignored_with_a_warning():
    rule = parse_tag_rule("type=raw,value=x,patern=y", 2)
    assert rule.ignored == ("patern",)
    result = derive_tags([rule], Flavor(), EVENTS["push_dev"])
    assert result.tags == ["x"] and "'patern' is not used" in result.warnings[0]


@pytest.mark.parametrize("lines,expected", [
    (["latest=true"], Flavor(latest="true")),
    (["latest=false", "prefix=dev-", "suffix=-alpine"],
     Flavor(latest="false", prefix="dev-", suffix="-alpine", prefix_index=1, suffix_index=2)),
    (["prefix=dev-,onlatest=true"], Flavor(prefix="dev-", prefix_latest=True, prefix_index=0)),
    (["prefix=dev-,onlatest=true", "suffix=-alpine,onlatest=true"],
     Flavor(prefix="dev-", prefix_latest=True, suffix="-alpine", suffix_latest=True, prefix_index=0,
            suffix_index=1)),
    (["prefix= "], Flavor(prefix="", prefix_index=0)),
    ([], Flavor()),
])
def test_parse_flavor(lines, expected):
    assert parse_flavor(lines) == expected


@pytest.mark.parametrize("lines,index,message", [
    (["latest=auto", "randomstr"], 1, "invalid flavor entry"),
    (["unknwown=foo"], 0, "unknown flavor entry"),
    (["latest"], 0, "invalid flavor entry"),
    (["latest=foo"], 0, "latest must be auto, true, false or highest"),
    (["suffix=-x,onlatest=yes"], 0, "onlatest must be true or false"),
    (["latest=auto,onlatest=true"], 0, "onlatest must follow prefix= or suffix="),
    (["prefix=a=b"], 0, "cannot contain '='"),
    (["latest=auto", ""], 1, "empty flavor entry"),
])
def test_parse_flavor_errors(lines, index, message):
    with pytest.raises(TagRuleError) as info:
        parse_flavor(lines)
    assert message in info.value.message
    assert (info.value.section, info.value.index) == ("flavor", index)


def test_defaults_parse():
    assert [r.type for r in DEFAULT_RULES] == ["semver"] * 3
    assert DEFAULT_FLAVOR == Flavor(latest="auto")


# --- validate_release_version -----------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.2.3", "v1.2.3", "1.3.0-rc.1", "1.2.3+build.5", "0.0.0"])
def test_release_version_accepted(version):
    validate_release_version(version, DEFAULT_RULES)


@pytest.mark.parametrize("version", ["1.2", "V1.2.3", "=1.2.3", "v01.2.3", "1.2.3.4", ""])
def test_release_version_rejected_for_semver_rules(version):
    with pytest.raises(UsageError) as info:
        validate_release_version(version, DEFAULT_RULES)
    assert not isinstance(info.value, TagRuleError)
    assert "MAJOR.MINOR.PATCH" in info.value.message or "MAJOR.MINOR.PATCH" in (info.value.hint or "")


def test_release_version_message_for_1_2():
    with pytest.raises(UsageError) as info:
        validate_release_version("1.2", DEFAULT_RULES)
    assert info.value.message == (
        "version '1.2' is not a semantic version: use MAJOR.MINOR.PATCH with an optional -prerelease "
        "and +build, e.g. 1.2.0, v1.2.3 or 1.3.0-rc.1 (a leading lower-case v is allowed; 'V' is not)")


def test_release_version_pep440_rules():
    rules = parse_tag_rules(["type=pep440,pattern={{version}}"])
    validate_release_version("1.1beta2", rules)
    validate_release_version("V1.2", rules)
    with pytest.raises(UsageError, match="not a PEP 440 version"):
        validate_release_version("sometag", rules)


def test_release_version_only_checked_by_rules_that_read_it():
    validate_release_version("1.2", parse_tag_rules(["type=semver,pattern={{version}},enable=false"]))
    validate_release_version("1.2", parse_tag_rules(["type=semver,pattern={{version}},value=1.2.3"]))
    validate_release_version("nightly-5", parse_tag_rules(["type=ref,event=tag"]))
    validate_release_version("docker-23.0.0",
                             parse_tag_rules(["type=semver,pattern={{version}},match=docker-(.*)"]))


@pytest.mark.parametrize("version", ["has space", "a..b", "x~1", "end.", "a.lock", "@", "/x"])
def test_release_version_must_name_a_git_tag(version):
    with pytest.raises(UsageError, match="cannot name a git tag"):
        validate_release_version(version, parse_tag_rules(["type=ref,event=tag"]))


@pytest.mark.parametrize("version,expected", [("1.3.0-rc.1", True), ("1.3.0", False), ("1.3rc1", True),
                                              ("1.2.post1", True), ("1.2", False), ("sometag", False)])
def test_is_prerelease(version, expected):
    assert is_prerelease(version) is expected


# --- building blocks ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,ok", [
    ("1.2.3", True), ("v1.2.3", True), ("1.2.3-rc.1", True), ("1.2.3+build.5", True), ("v0.0.3", True),
    ("1.2.3-0a", True), ("1.2", False), ("v1.2", False), ("V1.2.3", False), ("=1.2.3", False),
    ("v01.2.3", False), ("1.2.3-01", False), ("1.2.3-", False), ("p1-v1.0.0", False),
    ("9007199254740992.0.0", False), ("1.2.3-" + "a" * 300, False),
])
def test_semver_strict_validity(text, ok):
    assert (parse_semver(text) is not None) is ok


def test_semver_parts():
    sv = parse_semver("v1.2.3-rc.1+build.5")
    assert (sv.major, sv.minor, sv.patch, sv.version, sv.raw) == (1, 2, 3, "1.2.3-rc.1", "v1.2.3-rc.1+build.5")


@pytest.mark.parametrize("text,normal", [
    ("1.1beta2", "1.1b2"), ("1.0dev4", "1.0.dev4"), ("1.2post1", "1.2.post1"), ("1.2.3rc2", "1.2.3rc2"),
    ("1.0.0-rc.1", "1.0.0rc1"), ("v1.2.3", "1.2.3"), ("1.0-1", "1.0.post1"), ("1.0c1", "1.0rc1"),
    ("1.0.a", "1.0a0"), ("1!1.0", "1!1.0"), ("1.2.3+local.7", "1.2.3+local,7"), ("1.0rev", "1.0.post0"),
    ("sometag", None),
])
def test_pep440_normalisation(text, normal):
    assert normalize_pep440(text) == normal


def test_pep440_kinds():
    assert parse_pep440("1.2post1").is_final is False
    assert parse_pep440("1.2").is_final is True
    assert parse_pep440("1.2 ") is None  # valid() rejects blanks


@pytest.mark.parametrize("pattern,expected", [
    ("{{ raw }}.{{ version }}", False), ("{{ version }},{{raw }.", False), ("{{ raw }}", True),
    ("{{ raw}}", True), ("{{raw}}", True), (" {{raw}}", False),
])
def test_is_raw_statement(pattern, expected):
    assert is_raw_statement(pattern) is expected


def test_template_escapes_like_handlebars():
    assert escape("a=b&'") == "a&#x3D;b&amp;&#x27;"
    assert render("{{b}}|{{{b}}}|{{&b}}", {"b": "x=y"}) == "x&#x3D;y|x=y|x=y"
    # and that reaches the tag: a = in a branch name differs between {{branch}} and ref,event=branch
    ctx = gh("refs/heads/a=b")
    assert derive(["type=raw,{{branch}}", "type=ref,event=branch"], ctx).tags == ["a-b", "a-x3D-b"]


def test_template_escapes_and_comments():
    assert render(r"\{{b}} {{!c}}{{!-- d --}}x", {"b": "v"}) == "{{b}} x"
    assert render("\\\\{{b}}", {"b": "v"}) == "\\v"


def test_template_unknown_expression():
    with pytest.raises(TemplateError, match="unknown expression 'x'"):
        render("{{x}}", {"b": "v"})


@pytest.mark.parametrize("fmt,expected", [
    ("YYYYMMDD-HHmmss", "20200110-003000"),
    ("YYYY-MM-DDTHH:mm:ss.SSS[Z]", "2020-01-10T00:30:00.000Z"),
    ("dddd, MMMM Do YYYY, h:mm a", "Friday, January 10th 2020, 12:30 am"),
    ("L", "01/10/2020"),
    ("ll", "Jan 10, 2020"),
    (r"\YYYYY", "YYYYY"),  # a backslash escapes the whole next token
    (r"\Y-YYYY", "Y-2020"),
    ("[week] W, GGGG, DDDD, Q, E, X", "week 2, 2020, 010, 1, 5, 1578616200"),
    ("", "2020-01-10T00:30:00Z"),
    (None, "2020-01-10T00:30:00Z"),
])
def test_moment_formats(fmt, expected):
    assert format_moment(NOW, fmt) == expected


def test_moment_weeks_at_year_end():
    dt = datetime(2021, 1, 1, tzinfo=timezone.utc)
    assert format_moment(dt, "GGGG-[W]WW gggg-ww") == "2020-W53 2021-01"


def test_date_helper_with_zone_offset():
    assert render("{{date 'HH:mmZ' tz='Asia/Tokyo'}}", {}, {"date": NOW, "commit_date": NOW}) == "09:30+09:00"
    assert render("{{date x tz='asia/tokyo'}}", {}, {"date": NOW, "commit_date": NOW}) == (
        "2020-01-10T09:30:00+09:00")


@pytest.mark.parametrize("pattern,text,expected", [
    (r"v(\d+)", "v12", ["v12", "12"]),
    (r"/^V(\d)/i", "v1", ["v1", "1"]),
    (r"/\d/g", "a1b2", ["1", "2"]),
    (r"(?<major>\d+)\.\k<major>", "3.3", ["3.3", "3"]),
    (r"(a)|(b)", "b", ["b", None, "b"]),
    ("/nomatch/", "x", None),
])
def test_js_regex(pattern, text, expected):
    assert compile_js_regex(pattern).match(text) == expected


def test_js_regex_bad_flags():
    with pytest.raises(JsRegexError):
        compile_js_regex("/a/gg")


def test_latest_highest_votes_like_auto_and_marks_the_result():
    from pipeline.model.tags import (
        context_for_version,
        derive_tags,
        parse_flavor,
        parse_tag_rule,
    )
    rules = [parse_tag_rule("type=semver,pattern={{version}}", 0)]
    stable = derive_tags(rules, parse_flavor(["latest=highest"]), context_for_version("1.9.1"))
    assert stable.tags == ["1.9.1", "latest"] and stable.latest_if_highest
    pre = derive_tags(rules, parse_flavor(["latest=highest"]), context_for_version("2.0.0-rc.1"))
    assert pre.tags == ["2.0.0-rc.1"] and not pre.latest_if_highest
    auto = derive_tags(rules, parse_flavor(["latest=auto"]), context_for_version("1.9.1"))
    assert not auto.latest_if_highest


# -- SemVer precedence and limits (tags/semver.py) ---------------------------------------------

def _order(*versions):
    from pipeline.model.tags.semver import precedence
    return sorted(versions, key=lambda t: precedence(parse_semver(t)))


@pytest.mark.parametrize("low, high", [
    ("1.0.0-rc.2", "1.0.0-rc.10"),        # numeric identifiers compare as numbers, not strings
    ("1.0.0-1", "1.0.0-alpha"),           # numeric identifiers sort below alphanumeric ones
    ("1.0.0-0", "1.0.0-alpha"),
    ("1.0.0-alpha", "1.0.0-beta"),        # alphanumeric ones compare in ASCII order
    ("1.0.0-alpha", "1.0.0-alpha.1"),     # a longer list of identifiers is higher
    ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
    ("1.0.0-beta.11", "1.0.0-rc.1"),
    ("1.0.0-rc.1", "1.0.0"),              # a release is above its prereleases
    ("1.0.0-rc.99", "1.0.0"),
    ("1.0.0", "1.0.1-alpha"),
    ("0.9.9", "1.0.0-0"),
    ("1.9.0", "1.10.0"),
    ("1.0.9", "1.0.10"),
    ("9.0.0", "10.0.0"),
])
def test_semver_precedence(low, high):
    from pipeline.model.tags.semver import precedence
    assert precedence(parse_semver(low)) < precedence(parse_semver(high))
    assert _order(high, low) == [low, high]


def test_semver_precedence_ignores_build_metadata_and_v():
    from pipeline.model.tags.semver import precedence
    assert precedence(parse_semver("1.2.3+build.5")) == precedence(parse_semver("v1.2.3+build.6"))
    assert precedence(parse_semver("1.2.3")) == (1, 2, 3, (1,))


def test_semver_spec_example_order():
    # SemVer 2.0.0 §11's own example, shuffled
    spec = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
            "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    assert _order(*reversed(spec)) == spec
    assert _order("1.0.0-2", "1.0.0-10", "1.0.0-1") == ["1.0.0-1", "1.0.0-2", "1.0.0-10"]


def test_pre_key():
    from pipeline.model.tags.semver import _pre_key
    assert _pre_key("10") > _pre_key("2")
    assert _pre_key("5") < _pre_key("alpha")
    assert _pre_key("0") < _pre_key("alpha") < _pre_key("beta")


@pytest.mark.parametrize("text, ok", [
    ("1.0.0-" + "a" * 250, True),              # 256 characters: node-semver's MAX_LENGTH
    ("1.0.0-" + "a" * 251, False),             # 257
    (f"{2**53 - 1}.0.0", True),                # Number.MAX_SAFE_INTEGER
    (f"0.{2**53}.0", False),
    (f"0.0.{2**53 - 2}", True),
    (" 1.2.3 ", True),                         # node-semver trims
    (None, False), (123, False),
])
def test_semver_limits(text, ok):
    from pipeline.model.tags.semver import is_semver
    assert is_semver(text) is ok
    assert (parse_semver(text) is not None) is ok


def test_semver_value_is_frozen_and_hashable():
    import dataclasses
    v = parse_semver("1.2.3-rc.1+b.2")
    assert v.prerelease == ("rc", "1") and v.build == ("b", "2")
    assert v.is_prerelease and not parse_semver("1.2.3").is_prerelease
    assert parse_semver("1.2.3+b").version == "1.2.3" and parse_semver("1.2.3").build == ()
    assert {v, parse_semver("1.2.3-rc.1+b.2")} == {v}
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.major = 2


# -- derive: globals, warnings, messages (issue 12: mutation testing) --------------------------

def test_tag_result_latest_tag_and_defaults():
    import dataclasses
    assert TagResult("1.0.0", ["1.0.0", "1", "latest"], True).latest_tag == "latest"
    assert TagResult("1.0.0", ["1.0.0", "1"], False).latest_tag is None
    assert TagResult(None, [], True).latest_tag is None
    result = TagResult("1.0.0", ["1.0.0"], False)
    assert result.latest_if_highest is False and result.warnings == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.latest = True


@pytest.mark.parametrize("ctx, expected", [
    (gh("refs/heads/master"), "x-true-false"),
    (gh("refs/heads/dev", event=None), "x-false-true"),
    (gh("refs/heads/dev", event="schedule"), "x-true-false"),
    (TagContext(ref=None, event="schedule", now=NOW), "x-false-true"),
    (gh("refs/tags/xmaster"), "x-false-true"),     # a tag push is not the default branch
])
def test_is_default_branch_globals(ctx, expected):
    result = derive(["type=raw,value=x-{{is_default_branch}}-{{is_not_default_branch}}"], ctx)
    assert result.tags == [expected]


def test_missing_context_values_render_empty():
    ctx = TagContext(ref=None, sha=None, now=NOW, base_ref="refs/heads/main")
    assert derive(["type=raw,value=x{{branch}}{{tag}}{{sha}}{{base_ref}}"], ctx).tags == ["x"]


@pytest.mark.parametrize("ref, base_ref, expected", [
    ("refs/heads/feature", "refs/heads/main", "x-"),   # a branch push has no base_ref
    ("refs/tags/v1", "refs/heads/main", "x-main"),
    ("refs/pull/3/merge", "main", "x-main"),
])
def test_base_ref_only_for_pull_requests_and_tags(ref, base_ref, expected):
    assert derive(["type=raw,value=x-{{base_ref}}"], gh(ref, base_ref=base_ref)).tags == [expected]


def test_pep440_match_and_slash():
    assert derive(["type=pep440,pattern={{version}},match=^rel-(.*)"], gh("refs/tags/rel-1.2")).tags == [
        "1.2", "latest"]
    assert derive(["type=pep440,pattern={{version}},value=1.0/1"], gh("refs/heads/x")).tags == [
        "1.0.post1"]



@pytest.mark.parametrize("match, tags, warning", [
    ("^x(\\d.*)", ["1.2.3", "latest"], "match '^x(\\\\d.*)' does not match 'v1.2.3'; using it unchanged"),
    ("v\\d", [], "match 'v\\\\d' has no group 1 for 'v1.2.3'"),
    ("v(x)?1", [], "match 'v(x)?1' has no group 1 for 'v1.2.3'"),
])
def test_semver_match_warnings(match, tags, warning):
    result = derive([f"type=semver,pattern={{{{version}}}},match={match}"], gh("refs/tags/v1.2.3"))
    assert result.tags == tags
    label = "tags[0] " + repr("type=semver,pattern={{version}},match=" + match)
    assert result.warnings == [f"{label}: {warning}"]


@pytest.mark.parametrize("line, ref, warning", [
    ("type=semver,pattern={{version}}", "refs/tags/v1.2",
     "tags[0] 'type=semver,pattern={{version}}': 'v1.2' is not a valid semver, no tag"),
    ("type=pep440,pattern={{version}}", "refs/tags/vx",
     "tags[0] 'type=pep440,pattern={{version}}': 'vx' does not conform to PEP 440, no tag"),
    ("type=match,pattern=v(\\d)", "refs/tags/x",
     "tags[0] 'type=match,pattern=v(\\\\d)': 'v(\\\\d)' does not match 'x'"),
    ("type=match,pattern=v(\\d),group=2", "refs/tags/v1",
     "tags[0] 'type=match,pattern=v(\\\\d),group=2': group 2 does not exist for 'v(\\\\d)'"),
    ("type=match,pattern=v(\\d)(x)?,group=2", "refs/tags/v1",
     "tags[0] 'type=match,pattern=v(\\\\d)(x)?,group=2': group 2 does not exist for 'v(\\\\d)(x)?'"),
    ("type=raw,value=a,pattern=x", "refs/heads/x",
     "tags[0] 'type=raw,value=a,pattern=x': attribute 'pattern' is not used by type=raw"),
])
def test_rule_warnings_are_exact(line, ref, warning):
    assert derive([line], gh(ref)).warnings == [warning]


@pytest.mark.parametrize("ref", ["refs/pull/12/merge", "refs/pull/12"])
def test_pr_ref_with_or_without_merge(ref):
    assert derive(["type=ref,event=pr"], gh(ref)).tags == ["pr-12"]


def test_semver_prerelease_and_build_values():
    tags = derive(["type=semver,pattern={{major}}-{{prerelease}}-{{build}}"], gh("refs/tags/v1.2.3+b.5.6")).tags
    assert tags == ["1--b-5-6", "latest"]            # build identifiers joined with ','
    assert derive(["type=semver,pattern={{raw}}"], gh("refs/tags/v1.2.3-rc.1+b.5")).tags == [
        "v1.2.3-rc.1-b.5"]


@pytest.mark.parametrize("value, hint", [
    ("a" * 128, None),
    ("a" * 129, "the tag is 129 characters long; shorten the value or use another rule"),
    ("-" + "a" * 127, "add a prefix (prefix=v) or change the value so the tag starts with a letter or digit"),
])
def test_invalid_tag_hints(value, hint):
    line = f"type=raw,value={value}"
    if hint is None:
        assert derive([line], gh("refs/heads/x")).tags == [value]
        return
    with pytest.raises(TagRuleError) as err:
        derive([line], gh("refs/heads/x"))
    assert err.value.hint == hint
    assert err.value.section == "tags" and err.value.index == 0
    assert err.value.message == (f"{line!r} produced {value!r}, which is not a valid tag: must start "
                                 "with a letter, digit or '_' and be at most 128 characters")


def test_enable_template_giving_something_else_is_an_error():
    with pytest.raises(TagRuleError) as err:
        derive(["type=raw,value=a,enable={{branch}}"], gh("refs/heads/x"))
    assert err.value.message == ("'type=raw,value=a,enable={{branch}}': enable gave 'x', expected true "
                                 "or false")
    assert err.value.section == "tags" and err.value.index == 0


def test_template_errors_at_derive_time_name_the_rule():
    # parse_tag_rule checks templates, so a broken one reaches derive_tags only past it
    rule = parse_tag_rule("type=raw,value=a", 0)
    rule.attrs["value"] = "{{oops"
    with pytest.raises(TagRuleError) as err:
        derive_tags([rule], parse_flavor([]), gh("refs/heads/x"))
    assert err.value.message == "'type=raw,value=a': unclosed '{{' in '{{oops'"
    assert err.value.section == "tags" and err.value.index == 0


def test_a_rule_that_produces_nothing_is_skipped():
    assert derive(["type=raw,value={{tag}}", "type=raw,value=b"], gh("refs/heads/x")).tags == ["b"]


def test_invalid_latest_with_onlatest_prefix_is_a_flavor_error():
    with pytest.raises(TagRuleError) as err:
        derive(["type=raw,value=a,prefix="], gh("refs/heads/x"), ["latest=true", "prefix=-,onlatest=true"])
    assert err.value.message == ("the latest tag (flavor prefix/suffix with onlatest=true) produced "
                                 "'-latest', which is not a valid tag: must start with a letter, digit "
                                 "or '_' and be at most 128 characters")
    assert err.value.section == "flavor"


SEMVER_HELP_TEXT = ("use MAJOR.MINOR.PATCH with an optional -prerelease and +build, e.g. 1.2.0, v1.2.3 "
                    "or 1.3.0-rc.1 (a leading lower-case v is allowed; 'V' is not)")


@pytest.mark.parametrize("version, rules, message", [
    ("rel/1.2.3", ["type=semver,pattern={{version}}"],
     "version 'rel/1.2.3' (read as 'rel-1.2.3' by tags[0] 'type=semver,pattern={{version}}') is not "
     "a semantic version: " + SEMVER_HELP_TEXT),
    ("x1.2", ["type=pep440,pattern={{version}}"],
     "version 'x1.2' is not a PEP 440 version: use a PEP 440 version, e.g. 1.2, 1.2.3, 1.3.0rc1, "
     "1.2.post1 or 1.3.dev4 (a leading v is allowed)"),
    ("va", ["type=semver,pattern={{version}},match=^v(.)"],
     "version 'va' (read as 'a' by tags[0] 'type=semver,pattern={{version}},match=^v(.)') is not a "
     "semantic version: " + SEMVER_HELP_TEXT),
    ("a..b", [], "version 'a..b' cannot name a git tag: '..', '@{' and '//' are not allowed"),
])
def test_release_version_messages(version, rules, message):
    with pytest.raises(UsageError) as err:
        validate_release_version(version, parse_tag_rules(rules))
    assert err.value.message == message


@pytest.mark.parametrize("version, match", [
    ("x1.2.3", "^x(.*)"),       # the group is what the rule reads
    ("v1.2.3", "^q(.*)"),       # no match: the version as given
    ("v1.2.3", "^v"),           # no group: the version as given
    ("v1.2.3", "^v(x)?"),       # group 1 did not take part
])
def test_release_version_match_reads_group_one(version, match):
    validate_release_version(version, parse_tag_rules([f"type=semver,pattern={{{{version}}}},match={match}"]))


@pytest.mark.parametrize("version", ["  ", None, 5])
def test_release_version_must_not_be_empty(version):
    with pytest.raises(UsageError) as err:
        validate_release_version(version, [])
    assert err.value.message == "the version must not be empty"
    assert err.value.hint == SEMVER_HELP_TEXT
