"""Where the image comes from: git revision and source URL, for the OCI labels."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Mapping

from pipeline.model.tags.context import github_commit


def git(args: list[str], cwd: Path | str | None = None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def revision(cwd: Path, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return github_commit(env) or env.get("CI_COMMIT_SHA") or git(["rev-parse", "HEAD"], cwd)


def clean_remote_url(url: str) -> str | None:
    """Turn a git remote into a browsable https URL, dropping any user:token@ part."""
    url = url.strip()
    m = re.match(r"^[\w.-]+@([\w.-]+):(.+?)(?:\.git)?/?$", url)          # git@host:owner/repo.git
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    m = re.match(r"^(https?)://(?:[^@/]*@)?([^/@]+)/(.+?)(?:\.git)?/?$", url)   # keeps an https port
    if m:
        return f"{m.group(1)}://{m.group(2)}/{m.group(3)}"
    m = re.match(r"^(?:ssh|git)://(?:[^@/]*@)?([^/:]+)(?::\d+)?/(.+?)(?:\.git)?/?$", url)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    return None


def source_url(cwd: Path, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return clean_remote_url(f"{server}/{env['GITHUB_REPOSITORY']}")
    if env.get("CI_PROJECT_URL"):
        return clean_remote_url(env["CI_PROJECT_URL"])
    remote = git(["remote", "get-url", "origin"], cwd)
    return clean_remote_url(remote) if remote else None


def hygiene(cwd: Path, version: str, git_run=None) -> tuple[list[str], bool]:
    """(warnings, dirty) about the sources of a release, as goreleaser checks them: a working
    tree with uncommitted changes (the image is built from them, its revision label names
    HEAD), and a VERSION that is not the git tag at HEAD (`v1.2.3` and `1.2.3` count as one).
    Nothing outside a git repository."""
    run = git_run or (lambda args: git(args, cwd))
    if run(["rev-parse", "--is-inside-work-tree"]) != "true":
        return [], False
    warnings = []
    status = run(["status", "--porcelain", "--untracked-files=no"])
    dirty = bool(status)
    if dirty:
        count = len(status.splitlines())
        warnings.append(f"the working tree has {count} uncommitted change"
                        f"{'s' if count != 1 else ''}: the image is built from them, and its "
                        f"revision label names HEAD (--strict refuses this)")
    tags = (run(["tag", "--points-at", "HEAD"]) or "").split()
    bare = version.split("+", 1)[0]
    if tags and not any(t.lstrip("vV") == bare.lstrip("vV") for t in tags):
        warnings.append(f"VERSION {version} is not the git tag at HEAD ({', '.join(sorted(tags))})")
    return warnings, dirty
