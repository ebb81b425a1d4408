"""resolve_context: flags, then GitHub / GitLab variables, then git (through a fake callable)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.errors import UsageError
from pipeline.model.tags import (
    TagContext,
    context_for_version,
    derive_tags,
    parse_flavor,
    parse_tag_rules,
    resolve_context,
    run_git,
)

NOW = datetime(2020, 1, 10, 0, 30, tzinfo=timezone.utc)
SHA = "860c1904a1ce19322e91ac35af1ab07466440c37"
OTHER_SHA = "266574110acf203503badf966df2ea24b5d732d7"


class FakeGit:
    """Answers git commands from a table; records every call."""

    def __init__(self, answers: dict[tuple[str, ...], str] | None = None):
        self.answers = answers or {}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, args: list[str]) -> str | None:
        self.calls.append(tuple(args))
        return self.answers.get(tuple(args))


NO_GIT = FakeGit()


def resolve(env=None, git=None, **kw) -> TagContext:
    return resolve_context(env=env or {}, git=git or FakeGit(), now=NOW, **kw)


def tags_for(ctx: TagContext, lines: list[str]) -> list[str]:
    return derive_tags(parse_tag_rules(lines), parse_flavor([]), ctx).tags


# --- GitHub Actions ------------------------------------------------------------------------------

GITHUB_TAG = {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_SHA": SHA,
              "GITHUB_EVENT_NAME": "push", "GITHUB_BASE_REF": ""}


def test_github_tag_push():
    git = FakeGit()
    ctx = resolve(GITHUB_TAG, git)
    assert (ctx.ref, ctx.sha, ctx.event, ctx.default_branch, ctx.base_ref) == (
        "refs/tags/v1.2.3", SHA, "push", None, None)
    # ref and sha came from the environment; the default branch is not guessed from git on GitHub
    assert ("rev-parse", "HEAD") not in git.calls
    assert not any("refs/remotes/origin/HEAD" in c for c in git.calls)
    assert tags_for(ctx, ["type=semver,pattern={{version}}"]) == ["1.2.3", "latest"]


def test_github_pull_request():
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/15/merge", "GITHUB_SHA": SHA,
           "GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "main"}
    ctx = resolve(env)
    assert (ctx.ref, ctx.event, ctx.base_ref) == ("refs/pull/15/merge", "pull_request", "main")
    assert tags_for(ctx, ["type=ref,event=pr", "type=raw,to-{{base_ref}}"]) == ["pr-15", "to-main"]


def test_github_default_branch_from_flag():
    env = {**GITHUB_TAG, "GITHUB_REF": "refs/heads/main"}
    assert resolve(env).default_branch is None
    ctx = resolve(env, default_branch="main")
    assert tags_for(ctx, ["type=edge"]) == ["edge"]


# --- GitLab CI -----------------------------------------------------------------------------------

GITLAB = {"GITLAB_CI": "true", "CI_COMMIT_SHA": SHA, "CI_DEFAULT_BRANCH": "main",
          "CI_PIPELINE_SOURCE": "push"}


def test_gitlab_tag():
    env = {**GITLAB, "CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_TIMESTAMP": "2020-01-09T23:00:00+01:00"}
    ctx = resolve(env)
    assert (ctx.ref, ctx.sha, ctx.event, ctx.default_branch) == ("refs/tags/v1.2.3", SHA, "push", "main")
    assert ctx.commit_date == datetime(2020, 1, 9, 22, 0, tzinfo=timezone.utc)
    assert tags_for(ctx, ["type=raw,v-{{commit_date 'YYYYMMDD-HH'}}"]) == ["v-20200109-22"]


def test_gitlab_branch_is_default_branch():
    ctx = resolve({**GITLAB, "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"})
    assert (ctx.ref, ctx.event) == ("refs/heads/main", "push")
    assert tags_for(ctx, ["type=edge", "type=raw,dev,enable={{is_default_branch}}"]) == ["edge", "dev"]


def test_gitlab_merge_request():
    env = {**GITLAB, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "42",
           "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_COMMIT_REF_NAME": "feature/x"}
    ctx = resolve(env)
    assert (ctx.ref, ctx.event, ctx.base_ref) == ("refs/pull/42/merge", "pull_request", "main")
    assert tags_for(ctx, ["type=ref,event=pr", "type=sha"]) == ["pr-42", "sha-860c190"]


def test_gitlab_schedule():
    ctx = resolve({**GITLAB, "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main"})
    assert (ctx.ref, ctx.event) == ("refs/heads/main", "schedule")
    assert tags_for(ctx, ["type=schedule", "type=ref,event=branch"]) == ["nightly", "main"]


def test_gitlab_tag_wins_over_branch():
    ctx = resolve({**GITLAB, "CI_COMMIT_TAG": "v2.0.0", "CI_COMMIT_BRANCH": "main"})
    assert ctx.ref == "refs/tags/v2.0.0"


# --- flags and VERSION ---------------------------------------------------------------------------

def test_flags_override_env_field_by_field():
    env = {**GITLAB, "CI_COMMIT_BRANCH": "main"}
    ctx = resolve(env, ref="refs/tags/v9.9.9", sha=OTHER_SHA, event="release", default_branch="trunk")
    assert (ctx.ref, ctx.sha, ctx.event, ctx.default_branch) == ("refs/tags/v9.9.9", OTHER_SHA, "release",
                                                                 "trunk")
    # a flag that is not given still comes from the environment
    assert resolve(env, event="workflow_dispatch").ref == "refs/heads/main"


def test_version_wins_over_ci_ref():
    ctx = resolve({**GITLAB, "CI_COMMIT_BRANCH": "main"}, version="1.4.2")
    assert (ctx.ref, ctx.event, ctx.sha, ctx.default_branch) == ("refs/tags/1.4.2", "push", SHA, "main")
    assert tags_for(ctx, ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}"]) == [
        "1.4.2", "1", "latest"]


def test_a_workflow_dispatch_re_release_names_the_commit_checked_out():
    """A dispatch run's GITHUB_SHA is the head of the branch it was started from; the generated
    workflow checks the tag out, and type=sha tags must name that commit."""
    git = FakeGit({("rev-parse", "HEAD"): OTHER_SHA})
    env = {**GITHUB_TAG, "GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF": "refs/heads/main"}
    ctx = resolve(env, git, version="v1.2.3")
    assert ctx.sha == OTHER_SHA and ctx.ref == "refs/tags/v1.2.3"
    assert tags_for(ctx, ["type=sha"]) == [f"sha-{OTHER_SHA[:7]}"]
    assert resolve(GITHUB_TAG, FakeGit({("rev-parse", "HEAD"): OTHER_SHA})).sha == SHA   # a push: GITHUB_SHA


def test_a_workflow_dispatch_re_release_labels_the_commit_checked_out(tmp_path):
    import subprocess

    from pipeline.app.sourceinfo import revision
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert revision(tmp_path, {"GITHUB_SHA": SHA, "GITHUB_EVENT_NAME": "workflow_dispatch"}) == head
    assert revision(tmp_path, {"GITHUB_SHA": SHA, "GITHUB_EVENT_NAME": "push"}) == SHA


def test_version_with_sha_flag_and_git_commit_date():
    git = FakeGit({("show", "-s", "--format=%cI", OTHER_SHA): "2019-12-31T23:59:59Z"})
    ctx = resolve(git=git, version="1.0.0", sha=OTHER_SHA)
    assert ctx.sha == OTHER_SHA
    assert ctx.commit_date == datetime(2019, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


def test_context_for_version():
    ctx = context_for_version("1.2.3", sha=SHA, default_branch="main", now=NOW)
    assert ctx == TagContext(ref="refs/tags/1.2.3", sha=SHA, event="push", default_branch="main", now=NOW)


def test_ref_flag_must_be_a_full_ref():
    with pytest.raises(UsageError, match="not a full git ref"):
        resolve(ref="main")


# --- git fallback --------------------------------------------------------------------------------

def test_git_branch_checkout():
    git = FakeGit({
        ("rev-parse", "HEAD"): SHA,
        ("symbolic-ref", "-q", "HEAD"): "refs/heads/feature/login",
        ("symbolic-ref", "-q", "refs/remotes/origin/HEAD"): "refs/remotes/origin/main",
        ("show", "-s", "--format=%cI", SHA): "2020-01-09T12:00:00+00:00",
    })
    ctx = resolve(git=git)
    assert (ctx.ref, ctx.sha, ctx.event, ctx.default_branch) == ("refs/heads/feature/login", SHA, "push", "main")
    assert ctx.commit_date == datetime(2020, 1, 9, 12, tzinfo=timezone.utc)
    assert tags_for(ctx, ["type=ref,event=branch", "type=sha"]) == ["feature-login", "sha-860c190"]


def test_git_exact_tag_is_preferred_over_branch():
    git = FakeGit({("describe", "--tags", "--exact-match"): "v3.1.0",
                   ("symbolic-ref", "-q", "HEAD"): "refs/heads/main", ("rev-parse", "HEAD"): SHA})
    ctx = resolve(git=git)
    assert ctx.ref == "refs/tags/v3.1.0"
    assert tags_for(ctx, ["type=semver,pattern={{major}}.{{minor}}"]) == ["3.1", "latest"]


def test_no_ci_and_no_git():
    ctx = resolve(git=FakeGit())
    assert (ctx.ref, ctx.sha, ctx.event, ctx.default_branch, ctx.commit_date) == (None, None, "push", None, None)
    assert tags_for(ctx, ["type=ref,event=branch", "type=sha"]) == []


# --- other settings ------------------------------------------------------------------------------

def test_short_sha_length_from_env():
    ctx = resolve({**GITHUB_TAG, "DOCKER_METADATA_SHORT_SHA_LENGTH": "12"})
    assert ctx.short_sha_length == 12
    assert tags_for(ctx, ["type=sha"]) == ["sha-860c1904a1ce"]
    with pytest.raises(UsageError, match="not a valid number"):
        resolve({**GITHUB_TAG, "DOCKER_METADATA_SHORT_SHA_LENGTH": "twelve"})


def test_now_is_normalised_to_utc():
    tokyo = timezone(timedelta(hours=9))
    ctx = TagContext(now=datetime(2020, 1, 10, 9, 30, tzinfo=tokyo))
    assert ctx.now == NOW and ctx.now.tzinfo == timezone.utc
    assert TagContext(now=datetime(2020, 1, 10, 0, 30)).now == NOW


def test_run_git_returns_none_without_git(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable here
    assert run_git(["rev-parse", "HEAD"]) is None


def test_run_git_returns_none_for_a_missing_directory(tmp_path):
    assert run_git(["status"], cwd=tmp_path / "does-not-exist") is None
