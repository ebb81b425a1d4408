"""The pre-commit hooks of .pre-commit-hooks.yaml, run by pre-commit itself (no Docker, no network
to GitHub): this repository's working tree (tracked files plus new, not ignored ones, so the hooks
test the current code) is committed to a scratch git repository; scratch user repositories name
it in .pre-commit-config.yaml (`repo: PATH`, `rev: SHA`) and `pre-commit run --all-files` runs
`release-validate` and `release-ci-check` there. pre-commit pip-installs release into its own
virtualenv once per module (PRE_COMMIT_HOME is shared), from the package index pip is configured
with; that release also generates the scratch repositories' CI files (with an explicit --install,
as a user of the hooks must: see test_the_check_fails_without_an_install_spec)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]
# Stable whatever the default install becomes (the hooks run release from pre-commit's venv, a
# local directory install, which has no default a CI runner could use).
INSTALL = "git+https://example.com/acme/release.git@v1.2.3"
GIT = ["git", "-c", "user.name=release tests", "-c", "user.email=tests@example.com",
       "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", "-c", "core.autocrlf=false"]

RELEASE_YML = """\
image:
  name: app
  context: app
  dockerfile: Dockerfile
tags:
  - type=semver,pattern={{version}}
  - type=semver,pattern={{major}}.{{minor}}
registries:
  - name: hub
    type: generic
    registry: registry.example.com
    repository: team/app
"""
VALIDATE = "release validate"                 # the hooks' names, as pre-commit prints them
CI_CHECK = "release ci generate --check"


def _env(home: Path) -> dict[str, str]:
    """Our environment without what would steer git, pre-commit or release elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "PRE_COMMIT")) and k not in ("SKIP", "RELEASE_CONFIG")}
    env.update(PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never", NO_COLOR="1",
               GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    return env


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([*GIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """PRE_COMMIT_HOME for the module: the hook repository's virtualenv is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory, home) -> tuple[Path, str]:
    """(path, commit) of a git repository holding this working tree as it is now."""
    env = _env(home)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, env=env, capture_output=True, check=True, timeout=60).stdout
    names = {n for n in listed.decode().split("\0") if n} | {".pre-commit-hooks.yaml"}
    repo = tmp_path_factory.mktemp("release-hooks-repo")
    copied = 0
    for name in sorted(names):
        src = ROOT / name
        if not src.is_file():          # deleted in the working tree (or a submodule)
            continue
        dst = repo / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
        copied += 1
    assert (repo / ".pre-commit-hooks.yaml").is_file() and copied > 50
    _git(repo, "init", "-q", env=env)
    _git(repo, "add", "-A", env=env)
    _git(repo, "commit", "-q", "--no-verify", "-m", "working tree", env=env)
    return repo, _git(repo, "rev-parse", "HEAD", env=env).strip()


def _config(hook_repo: tuple[Path, str], validate_args=None, check_args=None) -> str:
    path, sha = hook_repo
    lines = ["repos:", f"  - repo: {path}", f"    rev: {sha}", "    hooks:"]
    for hook_id, args in (("release-validate", validate_args), ("release-ci-check", check_args)):
        lines.append(f"      - id: {hook_id}")
        if args is not None:
            lines.append(f"        args: [{', '.join(repr(a) for a in args)}]")
    return "\n".join(lines) + "\n"


def _hook_release(env: dict[str, str]) -> Path:
    """The `release` pre-commit installed for the hooks: the scratch repositories' CI files are
    generated with the very code that checks them (the snapshot, not the working tree, which
    others may be editing meanwhile)."""
    found = sorted(Path(env["PRE_COMMIT_HOME"]).glob("repo*/py_env-*/bin/release"))
    assert len(found) == 1, f"pre-commit's release: {found}"
    return found[0]


def _release(cwd: Path, *args: str, env: dict[str, str]) -> None:
    proc = subprocess.run([str(_hook_release(env)), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"release {' '.join(args)}: {proc.stdout}{proc.stderr}"


def _user_repo(base: Path, hook_repo, env, *, config_dir: str = ".", release_yml: str = RELEASE_YML,
               validate_args=None, check_args=("ci", "generate", "all", "--check", "--install", INSTALL),
               generate_args=("--install", INSTALL), generate: bool = True) -> Path:
    """A scratch repository with a valid release.yml (in config_dir), its build context, the CI
    files the hooks' release generates from it, and a .pre-commit-config.yaml; all staged."""
    repo = base / "user"
    cfg_dir = repo / config_dir
    (cfg_dir / "app").mkdir(parents=True)
    (cfg_dir / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (cfg_dir / "release.yml").write_text(release_yml)
    (repo / "README.md").write_text("app\n")
    (repo / ".pre-commit-config.yaml").write_text(
        _config(hook_repo, validate_args, None if check_args is None else list(check_args)))
    cfg = [] if config_dir == "." else ["-c", f"{config_dir}/release.yml"]
    if generate:
        _release(repo, *cfg, "validate", env=env)
        _release(repo, *cfg, "ci", "generate", "all", *generate_args, env=env)
        assert (repo / ".gitlab-ci.yml").is_file() and (repo / ".github/workflows/release.yml").is_file()
    _git(repo, "init", "-q", env=env)
    _git(repo, "add", "-A", env=env)
    return repo


def _run(repo: Path, env: dict[str, str], *args: str, timeout: int = 120):
    """`pre-commit run ARGS` (default: --all-files); .output is stdout + stderr."""
    proc = subprocess.run([*PRE_COMMIT, "run", "--color", "never", *(args or ["--all-files"])], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc


def _status(output: str, name: str) -> str:
    """Passed / Failed / "(no files to check)Skipped": what pre-commit printed for the hook."""
    line = next((ln for ln in output.splitlines() if ln.startswith(name + ".")), None)
    assert line, f"no status line for {name!r} in:\n{output}"
    return line.rsplit(".", 1)[-1].strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory, hook_repo, home) -> dict[str, str]:
    """pre-commit's virtualenv for the hook repository, built once (`pre-commit install-hooks`);
    the environment every run of the module uses."""
    env = _env(home)
    repo = _user_repo(tmp_path_factory.mktemp("warm-up"), hook_repo, env, generate=False)
    t0 = time.monotonic()
    proc = subprocess.run([*PRE_COMMIT, "install-hooks", "--color", "never"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pre-commit install-hooks:\n{proc.stdout}{proc.stderr}"
    print(f"pre-commit install-hooks: {time.monotonic() - t0:.1f}s")
    _hook_release(env)
    return env


@pytest.fixture
def user_repo(tmp_path, hook_repo, installed) -> Path:
    return _user_repo(tmp_path, hook_repo, installed)


def test_manifest_is_valid():
    proc = subprocess.run([*PRE_COMMIT, "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hooks_pass_on_a_good_repository(user_repo, installed):
    proc = _run(user_repo, installed)
    assert proc.returncode == 0, proc.output
    assert _status(proc.output, VALIDATE) == "Passed"
    assert _status(proc.output, CI_CHECK) == "Passed"


@pytest.mark.parametrize("old, new, message", [
    ("  dockerfile: Dockerfile\n", "  dockerfil: Dockerfile\n", "unknown key 'dockerfil'"),
    ("pattern={{major}}.{{minor}}\n", "pattern={{major}}.{{nope}}\n", "unknown expression 'nope'"),
], ids=["unknown-key", "bad-tag-rule"])
def test_a_broken_release_yml_fails_naming_file_and_line(user_repo, installed, old, new, message):
    text = (user_repo / "release.yml").read_text()
    assert text.count(old) == 1
    line = text[:text.index(old)].count("\n") + 1
    (user_repo / "release.yml").write_text(text.replace(old, new))

    proc = _run(user_repo, installed)
    assert proc.returncode == 1, proc.output
    assert _status(proc.output, VALIDATE) == "Failed"
    assert re.search(rf"release\.yml:{line}:\d+: .*{re.escape(message)}", proc.output), proc.output


def test_a_drifted_ci_file_fails_until_regenerated(user_repo, installed):
    gitlab = user_repo / ".gitlab-ci.yml"
    lines = gitlab.read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith("stages:"))
    lines[at] = "stages:  # edited by hand\n"
    gitlab.write_text("".join(lines))

    proc = _run(user_repo, installed)
    assert proc.returncode == 1, proc.output
    assert _status(proc.output, VALIDATE) == "Passed"
    assert _status(proc.output, CI_CHECK) == "Failed"
    assert ".gitlab-ci.yml: out of date" in proc.output
    assert "+stages:\n" in proc.output and "-stages:  # edited by hand" in proc.output
    assert ".github/workflows/release.yml: up to date" in proc.output

    _release(user_repo, "ci", "generate", "all", "--install", INSTALL, env=installed)
    proc = _run(user_repo, installed)
    assert proc.returncode == 0, proc.output
    assert _status(proc.output, CI_CHECK) == "Passed"


def test_a_changed_release_yml_needs_new_ci_files(user_repo, installed):
    """A registry added to release.yml changes both files (a GHCR login, on GitHub with
    `packages: write`)."""
    release_yml = user_repo / "release.yml"
    release_yml.write_text(release_yml.read_text() + "  - name: gh\n    type: ghcr\n    repository: acme/app\n")

    proc = _run(user_repo, installed)
    assert proc.returncode == 1, proc.output
    assert _status(proc.output, VALIDATE) == "Passed"
    assert _status(proc.output, CI_CHECK) == "Failed"
    assert ".gitlab-ci.yml: out of date" in proc.output
    assert ".github/workflows/release.yml: out of date" in proc.output
    assert "+      packages: write" in proc.output and "registry: ghcr.io" in proc.output

    _release(user_repo, "ci", "generate", "all", "--install", INSTALL, env=installed)
    proc = _run(user_repo, installed)
    assert proc.returncode == 0, proc.output


def test_the_check_runs_with_the_options_it_is_given(user_repo, installed):
    """Files generated with other options (here another --install) are out of date for the hook:
    its args must say what the files were generated with."""
    _release(user_repo, "ci", "generate", "all", "--install", "release-pipeline==9.9.9", env=installed)
    proc = _run(user_repo, installed)
    assert proc.returncode == 1, proc.output
    assert _status(proc.output, CI_CHECK) == "Failed"
    assert "release-pipeline==9.9.9" in proc.output and "out of date" in proc.output


def test_a_config_elsewhere_through_args(tmp_path, hook_repo, installed):
    """`-c PATH` goes before the subcommand: the hooks' args are replaced whole."""
    config = ["-c", "deploy/release.yml"]
    repo = _user_repo(tmp_path, hook_repo, installed, config_dir="deploy",
                      validate_args=[*config, "validate"],
                      check_args=[*config, "ci", "generate", "all", "--check", "--install", INSTALL])
    proc = _run(repo, installed)
    assert proc.returncode == 0, proc.output
    assert _status(proc.output, VALIDATE) == "Passed"
    assert _status(proc.output, CI_CHECK) == "Passed"

    release_yml = repo / "deploy" / "release.yml"
    text = release_yml.read_text()
    line = text[:text.index("  dockerfile:")].count("\n") + 1
    release_yml.write_text(text.replace("  dockerfile:", "  dockerfil:"))
    proc = _run(repo, installed)
    assert proc.returncode == 1, proc.output
    assert _status(proc.output, VALIDATE) == "Failed"
    assert re.search(rf"deploy/release\.yml:{line}:\d+: unknown key 'dockerfil'", proc.output), proc.output


def test_ci_install_in_release_yml_needs_no_args(tmp_path, hook_repo, installed):
    """With ci.install in release.yml both hooks run with their default args."""
    repo = _user_repo(tmp_path, hook_repo, installed,
                      release_yml=RELEASE_YML + f"ci:\n  install: {INSTALL}\n",
                      check_args=None, generate_args=())
    assert INSTALL in (repo / ".gitlab-ci.yml").read_text()
    proc = _run(repo, installed)
    assert proc.returncode == 0, proc.output
    assert _status(proc.output, CI_CHECK) == "Passed"

    gitlab = repo / ".gitlab-ci.yml"
    gitlab.write_text(gitlab.read_text().replace(INSTALL, INSTALL.replace("v1.2.3", "v1.2.4"), 1))
    proc = _run(repo, installed)
    assert proc.returncode == 1, proc.output
    assert ".gitlab-ci.yml: out of date" in proc.output


def test_only_the_files_they_watch_trigger_them(user_repo, installed):
    """`pre-commit run --files` with a file neither hook watches skips both."""
    proc = _run(user_repo, installed, "--files", "README.md", "app/Dockerfile")
    assert proc.returncode == 0, proc.output
    assert _status(proc.output, VALIDATE).endswith("Skipped")
    assert _status(proc.output, CI_CHECK).endswith("Skipped")

    proc = _run(user_repo, installed, "--files", ".gitlab-ci.yml")
    assert proc.returncode == 0, proc.output
    assert _status(proc.output, VALIDATE).endswith("Skipped")
    assert _status(proc.output, CI_CHECK) == "Passed"


def test_the_check_fails_without_an_install_spec(tmp_path, hook_repo, installed):
    """pre-commit installs release from a directory, which a CI runner does not have: without
    ci.install in release.yml or --install in its args the check cannot pass (exit 2, the hint
    says what to set)."""
    repo = _user_repo(tmp_path, hook_repo, installed, check_args=None)
    proc = _run(repo, installed)
    assert proc.returncode == 1, proc.output
    assert _status(proc.output, VALIDATE) == "Passed"
    assert _status(proc.output, CI_CHECK) == "Failed"
    assert "- exit code: 2" in proc.output and "--install" in proc.output
