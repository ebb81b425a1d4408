"""Where tags are derived from: the ref, sha, event and default branch (TagContext).

Resolution order, field by field: command-line flags, then CI variables (GitHub Actions,
GitLab CI), then the local git repository.  Git is reached only through the `git` callable so
that everything but `run_git` stays free of I/O.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from pipeline.errors import UsageError

GitRunner = Callable[[list[str]], "str | None"]
DEFAULT_SHORT_SHA_LENGTH = 7


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True)
class TagContext:
    ref: str | None = None  # full ref: refs/tags/v1.2.3, refs/heads/main, refs/pull/15/merge
    sha: str | None = None
    event: str | None = "push"
    default_branch: str | None = None
    now: datetime = field(default_factory=_utcnow)  # UTC; {{date}} and schedule tags
    commit_date: datetime | None = None  # {{commit_date}}; falls back to `now`
    base_ref: str | None = None  # PR target branch, for {{base_ref}}
    short_sha_length: int = DEFAULT_SHORT_SHA_LENGTH  # DOCKER_METADATA_SHORT_SHA_LENGTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", _as_utc(self.now))
        if self.commit_date is not None:
            object.__setattr__(self, "commit_date", _as_utc(self.commit_date))

    @property
    def tag(self) -> str | None:
        return self.ref[len("refs/tags/"):] if self.ref and self.ref.startswith("refs/tags/") else None

    @property
    def branch(self) -> str | None:
        return self.ref[len("refs/heads/"):] if self.ref and self.ref.startswith("refs/heads/") else None


def context_for_version(version: str, sha: str | None = None, default_branch: str | None = None,
                        now: datetime | None = None, commit_date: datetime | None = None) -> TagContext:
    """A release of VERSION given on the command line behaves like a push of tag VERSION."""
    return TagContext(ref=f"refs/tags/{version}", sha=sha or None, event="push",
                      default_branch=default_branch or None, now=now or _utcnow(),
                      commit_date=commit_date)


def run_git(args: list[str], cwd: str | os.PathLike[str] | None = None) -> str | None:
    """`git ARGS` in `cwd`: stripped stdout, or None when git is missing or the command fails."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=30, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None


@dataclass
class _Found:
    ref: str | None = None
    sha: str | None = None
    event: str | None = None
    default_branch: str | None = None
    base_ref: str | None = None
    commit_date: datetime | None = None


def github_commit(env: Mapping[str, str]) -> str | None:
    """The commit a GitHub Actions job builds, as the environment says: GITHUB_SHA, except on
    workflow_dispatch, where it is the head of the branch the run was started from while the job
    may check out another commit (a re-release checks out the tag): None there, so git says."""
    if _env(env, "GITHUB_EVENT_NAME") == "workflow_dispatch":
        return None
    return _env(env, "GITHUB_SHA")


def _from_github(env: Mapping[str, str]) -> _Found | None:
    if not (_env(env, "GITHUB_ACTIONS") or _env(env, "GITHUB_REF")):
        return None
    # The default branch is only in the event payload, not in the environment: pass it as a flag.
    return _Found(ref=_env(env, "GITHUB_REF"), sha=github_commit(env),
                  event=_env(env, "GITHUB_EVENT_NAME"), base_ref=_env(env, "GITHUB_BASE_REF"))


def _from_gitlab(env: Mapping[str, str]) -> _Found | None:
    if not (_env(env, "GITLAB_CI") or _env(env, "CI_COMMIT_SHA")):
        return None
    found = _Found(sha=_env(env, "CI_COMMIT_SHA"), default_branch=_env(env, "CI_DEFAULT_BRANCH"),
                   commit_date=_parse_date(_env(env, "CI_COMMIT_TIMESTAMP")))
    tag, mr, branch = _env(env, "CI_COMMIT_TAG"), _env(env, "CI_MERGE_REQUEST_IID"), _env(env, "CI_COMMIT_BRANCH")
    if tag:
        found.ref = f"refs/tags/{tag}"
    elif mr:
        found.ref = f"refs/pull/{mr}/merge"
        found.event = "pull_request"
        found.base_ref = _env(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    elif branch:
        found.ref = f"refs/heads/{branch}"
    if _env(env, "CI_PIPELINE_SOURCE") == "schedule":
        found.event = "schedule"
    return found


def _short_sha_length(env: Mapping[str, str]) -> int:
    text = _env(env, "DOCKER_METADATA_SHORT_SHA_LENGTH")
    if text is None:
        return DEFAULT_SHORT_SHA_LENGTH
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value:
        raise UsageError(f"DOCKER_METADATA_SHORT_SHA_LENGTH is not a valid number: {text!r}",
                         hint="set it to the number of characters for type=sha tags, e.g. 7")
    return max(0, int(value)) if value != float("inf") else 2**31


def _git_ref(git: GitRunner) -> str | None:
    tag = git(["describe", "--tags", "--exact-match"])
    if tag:
        return f"refs/tags/{tag}"
    head = git(["symbolic-ref", "-q", "HEAD"])
    return head or None


def _git_default_branch(git: GitRunner) -> str | None:
    head = git(["symbolic-ref", "-q", "refs/remotes/origin/HEAD"])
    prefix = "refs/remotes/origin/"
    return head[len(prefix):] if head and head.startswith(prefix) else None


def _check_ref(ref: str) -> str:
    if not ref.startswith("refs/"):
        raise UsageError(f"ref {ref!r} is not a full git ref",
                         hint="write refs/tags/v1.2.3, refs/heads/main or refs/pull/15/merge")
    return ref


def resolve_context(version: str | None = None, ref: str | None = None, sha: str | None = None,
                    event: str | None = None, default_branch: str | None = None,
                    env: Mapping[str, str] = os.environ, git: GitRunner | None = None,
                    now: datetime | None = None) -> TagContext:
    """Build the TagContext: flags first, then GitHub / GitLab variables, then `git`.

    `git` runs a git command and returns its stripped stdout or None; by default `run_git` in the
    current directory.  With VERSION the ref is refs/tags/VERSION and the event is push.
    """
    git = git or run_git
    github = _from_github(env)
    ci = github or _from_gitlab(env)

    def from_git(args: list[str]) -> str | None:
        out = git(args)
        return out or None

    resolved_sha = sha or (ci.sha if ci else None) or from_git(["rev-parse", "HEAD"])
    resolved_default = default_branch or (ci.default_branch if ci else None)
    if resolved_default is None and github is None:
        resolved_default = _git_default_branch(git)
    commit_date = (ci.commit_date if ci else None) or _parse_date(
        from_git(["show", "-s", "--format=%cI", resolved_sha or "HEAD"]))
    short = _short_sha_length(env)

    if version is not None:
        ctx = context_for_version(version, sha=resolved_sha, default_branch=resolved_default,
                                  now=now, commit_date=commit_date)
        return replace(ctx, short_sha_length=short)

    resolved_ref = _check_ref(ref) if ref else ((ci.ref if ci else None) or _git_ref(git))
    resolved_event = event or (ci.event if ci else None) or "push"
    return TagContext(ref=resolved_ref, sha=resolved_sha, event=resolved_event,
                      default_branch=resolved_default, now=now or _utcnow(), commit_date=commit_date,
                      base_ref=ci.base_ref if ci else None, short_sha_length=short)
