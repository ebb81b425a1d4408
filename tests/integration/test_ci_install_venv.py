"""Issue 13 item 1, end to end: the generated CI installs the release that generated it.

This project's current working-tree source (the files git lists: tracked, and new ones not
ignored) is committed to a throwaway git repository and installed from it into a fresh venv A
(`pip install git+file:///...`). A's `release ci generate github` must write an `Install release`
step that installs `git+file:///...@COMMIT` (the commit, not the branch), and that spec must
install, in a second fresh venv B, a `release` that runs. Dependencies come from the package index
pip is configured with. No Docker needed; about 30-60 s.

(Venv A is not made with --system-site-packages: from /work/main/.venv's python that means the
base interpreter's site-packages, which do not hold release's dependencies; A installs them.)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline import __version__

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RELEASE_YML = """\
image:
  name: app
  context: app
registries:
  - {name: corp, registry: registry.example.com, repository: team/app}
"""


def clean_env() -> dict[str, str]:
    """The environment without this interpreter's venv or git's per-repository variables."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GIT_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def sh(*args: str | Path, cwd: Path | None = None, timeout: int = 180) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{shlex.join(map(str, args))} exited {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, str]:
    """(a git repository holding the working tree's source, its commit)."""
    repo = tmp_path_factory.mktemp("source") / "release"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, env=clean_env(), capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if not src.is_file() and not src.is_symlink():
            continue                     # deleted in the working tree, not yet in git
        dst = repo / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    git = ["git", "-c", "user.name=release tests", "-c", "user.email=tests@example.invalid",
           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    sh(*git, "init", "-q", cwd=repo)
    sh(*git, "add", "-A", cwd=repo)
    sh(*git, "commit", "-q", "-m", "working tree snapshot", cwd=repo)
    return repo, sh("git", "rev-parse", "HEAD", cwd=repo).strip()


def venv(path: Path) -> Path:
    sh(sys.executable, "-m", "venv", path)
    return path / "bin"


def install_specs(workflow: str) -> list[str]:
    """What each `Install release` step of a generated workflow installs."""
    data = YAML(typ="safe", pure=True).load(workflow)
    specs = []
    for job in data["jobs"].values():
        for step in job.get("steps", []):
            if step.get("name") == "Install release":
                words = shlex.split(step["run"])
                assert words[:2] == ["pipx", "install"] and len(words) == 3, step["run"]
                specs.append(words[2])
    return specs


def test_generated_ci_installs_the_commit_release_came_from(source, tmp_path):
    repo, commit = source
    url = repo.as_uri()                                   # file:///tmp/.../release

    a = venv(tmp_path / "a")
    sh(a / "pip", "install", "--quiet", f"git+{url}", timeout=240)
    scratch = tmp_path / "project"
    (scratch / "app").mkdir(parents=True)
    (scratch / "app" / "Dockerfile").write_text("FROM scratch\n")
    (scratch / "release.yml").write_text(RELEASE_YML)

    # A runs its own copy, and reads its own PEP 610 record (not the development install's)
    probe = ("import json, pipeline; from pipeline.ci.install import read_direct_url; "
             "print(json.dumps([pipeline.__file__, json.loads(read_direct_url())]))")
    where, record = json.loads(sh(a / "python", "-c", probe, cwd=scratch))
    assert Path(where).resolve().is_relative_to((tmp_path / "a").resolve()), where
    assert record["url"] == url
    assert (record["vcs_info"]["vcs"], record["vcs_info"]["commit_id"]) == ("git", commit)

    workflow = sh(a / "release", "ci", "generate", "github", "--output", "-", cwd=scratch)
    specs = install_specs(workflow)
    assert specs and set(specs) == {f"git+{url}@{commit}"}
    assert "release-pipeline==" not in workflow

    b = venv(tmp_path / "b")
    (spec,) = set(specs)
    sh(b / "pip", "install", "--quiet", spec, timeout=240)
    assert sh(b / "release", "--version").strip() == f"release, version {__version__}"
    where, record = json.loads(sh(b / "python", "-c", probe, cwd=scratch))
    assert Path(where).resolve().is_relative_to((tmp_path / "b").resolve()), where
    assert record["vcs_info"]["commit_id"] == commit
