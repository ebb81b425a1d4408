"""Issue 13, fixes in the generated CI files:

1. a linux/arm64-only image builds on GitHub's native arm64 runner, not under QEMU;
2. Docker-in-Docker and binfmt are current and pinned (versions.yml);
3. GitLab's merge job (`release manifest merge`, no engine) gets no Docker-in-Docker and logs
   in without `docker login`;
4. workflow_dispatch releases an existing tag again;
5. a GitLab registry without `registry:` is $CI_REGISTRY at run time on GitLab (the file does not
   depend on the CI_REGISTRY of wherever it was generated) and registry.gitlab.com on GitHub.

Contexts come from build_context, files from render; every file passes check-jsonschema's
built-in schemas, offline. Scripts of the generated files run here with stubs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.auth.dockerconfig import lookup
from pipeline.ci.context import build_context, github_runner
from pipeline.ci.render import load_versions, render
from pipeline.model.config.loader import load_config
from tests.support.ciyaml import check_jsonschema, load

VERSIONS = load_versions(None)
RELEASING = "${{ startsWith(github.ref, 'refs/tags/') || github.event_name == 'workflow_dispatch' }}"
VERSION_EXPR = "${{ inputs.version || github.ref_name }}"
TAG_REF = "${{ github.event_name == 'workflow_dispatch' && format('refs/tags/{0}', inputs.version) || '' }}"

REGISTRIES = {
    "generic": "{name: corp, registry: registry.example.com, repository: team/app}",
    "dockerhub": "{name: hub, type: dockerhub, registry: docker.io, repository: acme/app}",
    "ghcr": "{name: gh, type: ghcr, registry: ghcr.io, repository: acme/app}",
    "gitlab": "{name: gl, type: gitlab, registry: registry.gitlab.com, repository: acme/app}",
    "gitlab-default": "{name: gl, type: gitlab, repository: acme/app}",
    "env": "{name: corp-env, registry: r2.example.com, repository: team/app, "
           "username_env: CORP_USER, password_env: CORP_PASS}",
    "ecr": "{name: aws, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, repository: app}",
    "loopback": "{name: local, registry: 'localhost:5000', repository: team/app}",
}


def config_for(tmp_path: Path, kinds, platforms=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    image = "{name: app" + (f", platforms: [{', '.join(platforms)}]" if platforms else "") + "}"
    lines = "".join(f"  - {REGISTRIES[k]}\n" for k in kinds)
    (tmp_path / "release.yml").write_text(f"image: {image}\nregistries:\n{lines}")
    return load_config(tmp_path / "release.yml")


def files_for(config, versions=VERSIONS) -> tuple[str, str]:
    ctx = build_context(config, config_path="release.yml", versions=versions, install="release-pipeline==1.0")
    return render("github", ctx), render("gitlab", ctx)


def uses(job: dict, prefix: str) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(prefix)]


def validate_all(tmp_path: Path, texts: list[tuple[str, str]]) -> None:
    github, gitlab = [], []
    for i, (gh, gl) in enumerate(texts):
        (tmp_path / f"wf-{i}.yml").write_text(gh)
        (tmp_path / f"ci-{i}.yml").write_text(gl)
        github.append(tmp_path / f"wf-{i}.yml")
        gitlab.append(tmp_path / f"ci-{i}.yml")
    assert check_jsonschema("vendor.github-workflows", github)["status"] == "ok"
    assert check_jsonschema("vendor.gitlab-ci", gitlab)["status"] == "ok"


# ---------------------------------------------------------------------------- 1. arm64 natively


def test_a_linux_arm64_image_builds_on_the_native_arm64_runner(tmp_path):
    github, gitlab = files_for(config_for(tmp_path, ["generic"], ["linux/arm64"]))
    wf = load(github)
    assert set(wf["jobs"]) == {"build", "release"}                     # one platform: no matrix
    for name in ("build", "release"):
        job = wf["jobs"][name]
        assert job["runs-on"] == VERSIONS["github"]["runner_arm64"] == "ubuntu-24.04-arm"
        assert not uses(job, "docker/setup-qemu-action@"), name
    assert "# image.platforms is linux/arm64 only: the jobs run on ubuntu-24.04-arm, natively (no QEMU).\n" in github
    # GitLab knows no arm64 runner: binfmt on the default runner, and the header says so
    ci = load(gitlab)
    assert ci["default"]["before_script"][-1] == f"docker run --privileged --rm {VERSIONS['gitlab']['binfmt']} --install arm64"
    assert "no runner of another architecture is known to this generator" in gitlab
    validate_all(tmp_path, [(github, gitlab)])


def test_without_an_arm64_runner_or_for_other_platforms_qemu_stays():
    no_arm = {"github": {"runner": "x64", "runner_arm64": ""}}
    assert github_runner(["linux/arm64"], no_arm) == ("x64", ["arm64"])
    assert github_runner(["linux/arm64"], VERSIONS) == ("ubuntu-24.04-arm", [])
    assert github_runner(["linux/arm/v7"], VERSIONS) == ("ubuntu-24.04", ["arm"])
    assert github_runner(["linux/amd64"], VERSIONS) == ("ubuntu-24.04", [])
    assert github_runner(["linux/386"], VERSIONS) == ("ubuntu-24.04", [])
    assert github_runner([], VERSIONS) == ("ubuntu-24.04", [])
    # several platforms build on one amd64 runner (the build job; the release job when blocked)
    assert github_runner(["linux/amd64", "linux/arm64"], VERSIONS) == ("ubuntu-24.04", ["arm64"])


def test_no_arm64_runner_in_your_versions_file_means_qemu(tmp_path):
    versions = {**VERSIONS, "github": {**VERSIONS["github"], "runner_arm64": ""}}
    github, _ = files_for(config_for(tmp_path, ["generic"], ["linux/arm64"]), versions)
    release = load(github)["jobs"]["release"]
    assert release["runs-on"] == "ubuntu-24.04"
    (qemu,) = uses(release, "docker/setup-qemu-action@")
    assert qemu["with"] == {"platforms": "arm64"}
    assert "natively" not in github


# ---------------------------------------------------------------------------- 2. pinned images


def test_dind_and_binfmt_are_current_and_pinned(tmp_path):
    dind, binfmt = VERSIONS["gitlab"]["dind"], VERSIONS["gitlab"]["binfmt"]
    major = re.fullmatch(r"docker:(\d+)-dind", dind)
    assert major and int(major.group(1)) >= 29, dind       # docker-library/docker: 29 (2026-08)
    assert re.fullmatch(r"tonistiigi/binfmt:qemu-v\d+\.\d+\.\d+-\d+", binfmt), binfmt    # not :latest
    _, gitlab = files_for(config_for(tmp_path, ["generic"], ["linux/amd64", "linux/riscv64"]))
    assert f"- name: {dind}\n" in gitlab and f"--rm {binfmt} --install riscv64" in gitlab
    assert "binfmt:latest" not in gitlab and "27-dind" not in gitlab


# ---------------------------------------------------------------------------- 3. merge without dind


def test_the_merge_job_has_no_docker_engine(tmp_path):
    kinds = ["generic", "dockerhub", "ghcr", "gitlab", "env", "ecr", "loopback"]
    github, gitlab = files_for(config_for(tmp_path, kinds, ["linux/amd64", "linux/arm64"]))
    ci = load(gitlab)
    merge, leg = ci["release"], ci["platform"]
    assert merge["script"][-1].startswith("release manifest merge")
    # no dind service (default:'s, or its own), no DOCKER_HOST pointing at one, no docker CLI
    assert merge["inherit"] == {"default": ["image"], "variables": False}
    assert merge["services"] == [{"name": "registry:2", "alias": "registry-5000"}]
    assert merge["before_script"] == ["pip install --quiet --root-user-action=ignore release-pipeline==1.0"]
    assert not [line for line in merge["script"] if re.search(r"\bdocker (login|run)\b", line)]
    assert "DOCKER_HOST" in ci["variables"] and "DOCKER_HOST" not in merge.get("variables", {})
    # the jobs that build keep Docker-in-Docker and `docker login` (their engine pulls too)
    assert ci["default"]["services"] == [{"name": VERSIONS["gitlab"]["dind"], "alias": "docker"}]
    assert "inherit" not in leg and any("docker login" in line for line in leg["script"])
    assert "It needs no Docker engine, so it\n# gets no Docker-in-Docker service." in gitlab
    validate_all(tmp_path, [(github, gitlab)])


def test_the_merge_jobs_docker_config_is_what_release_reads(tmp_path):
    """The script that replaces `docker login` in the merge job, run with sh: release's own
    reader of the Docker config finds every registry's credentials in what it wrote."""
    ci = load(files_for(config_for(tmp_path / "p", ["generic", "dockerhub", "ghcr", "gitlab"],
                                   ["linux/amd64", "linux/arm64"]))[1])
    (script,) = [line for line in ci["release"]["script"] if "config.json" in line]
    secrets = {"CORP_USERNAME": "corp-user", "CORP_PASSWORD": 'p"a\\s s%s$(id)\n:x',
               "HUB_USERNAME": "hubber", "HUB_TOKEN": "dckr_pat_abc", "GH_USERNAME": "octo",
               "GH_PASSWORD": "ghp_" + "x" * 80}
    home = tmp_path / "home"
    home.mkdir()
    out = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **secrets})
    assert out.returncode == 0, out.stderr
    config = home / ".docker" / "config.json"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    auths = json.loads(config.read_text())["auths"]
    assert set(auths) == {"registry.example.com", "https://index.docker.io/v1/", "ghcr.io"}
    env = {"DOCKER_CONFIG": str(home / ".docker")}
    for host, user, password in [("registry.example.com", "corp-user", secrets["CORP_PASSWORD"]),
                                 ("docker.io", "hubber", "dckr_pat_abc"),
                                 ("ghcr.io", "octo", secrets["GH_PASSWORD"])]:
        entry, source = lookup(host, env)
        assert base64.b64decode(entry["auth"]).decode() == f"{user}:{password}" and source == "Docker config"
    assert not (tmp_path / "p" / "id").exists()
    # DOCKER_CONFIG set: written there, as release will read it
    other = tmp_path / "other"
    out = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                              "DOCKER_CONFIG": str(other), **secrets})
    assert out.returncode == 0 and (other / "config.json").is_file()


# ---------------------------------------------------------------------------- 4. workflow_dispatch


@pytest.mark.parametrize("platforms", [(), ("linux/amd64", "linux/arm64")])
def test_workflow_dispatch_releases_an_existing_tag_again(tmp_path, platforms):
    github, _ = files_for(config_for(tmp_path, ["generic", "env"], platforms))
    wf = load(github)
    assert wf["on"]["workflow_dispatch"] == {"inputs": {"version": {
        "description": "An existing tag to release again, e.g. v1.4.2 (checked against the tag rules)",
        "required": True, "type": "string"}}}
    assert wf["on"]["push"]["tags"] and "pull_request" in wf["on"]
    # a dispatch never builds-only, never cancels a release, and gets its own group per version
    assert wf["jobs"]["build"]["if"] == "${{ github.event_name != 'workflow_dispatch' && !startsWith(github.ref, 'refs/tags/') }}"
    assert wf["concurrency"]["cancel-in-progress"].startswith("${{ github.event_name != 'workflow_dispatch' && ")
    assert "${{ inputs.version }}" in wf["concurrency"]["group"]
    releasing = [job for name, job in wf["jobs"].items() if name != "build"]
    assert len(releasing) == (2 if platforms else 1)
    for job in releasing:
        assert job["if"] == RELEASING
        checkout = job["steps"][0]
        assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["ref"] == TAG_REF
        runs = [s for s in job["steps"] if "release " in s.get("run", "")]
        assert runs and all(s["env"]["VERSION"] == VERSION_EXPR for s in runs)
    # the version input never reaches a script but through env:
    for job in wf["jobs"].values():
        for s in job["steps"]:
            assert "inputs." not in s.get("run", "")
    if not platforms:
        gate = wf["jobs"]["release"]["steps"][[s.get("name") for s in wf["jobs"]["release"]["steps"]].index(
            "Check the tag against the tag rules")]
        assert gate["run"] == 'release tags "$VERSION"' and gate["env"] == {"VERSION": VERSION_EXPR}
    assert "Run workflow (workflow_dispatch) with `version` = an existing tag" in github


# ---------------------------------------------------------------------------- 5. $CI_REGISTRY


def test_gitlab_registry_without_a_host_is_the_jobs_ci_registry(tmp_path, monkeypatch):
    """release.yml without `registry:` for a gitlab registry: the loader uses $CI_REGISTRY where
    it runs. Generating the file inside GitLab CI (e.g. `ci generate --check` in a pipeline) and
    outside it must give the same file, or the drift check fails every time."""
    kinds = ["gitlab-default", "generic"]
    outputs = []
    for ci_registry in (None, "gitlab.example.com:5050", "registry.gitlab.com"):
        if ci_registry is None:
            monkeypatch.delenv("CI_REGISTRY", raising=False)
        else:
            monkeypatch.setenv("CI_REGISTRY", ci_registry)
        config = config_for(tmp_path / str(len(outputs)), kinds, ["linux/amd64", "linux/arm64"])
        (gl,) = [r for r in config.registries if r.name == "gl"]
        assert gl.host_defaulted and gl.registry == (ci_registry or "registry.gitlab.com")
        outputs.append(files_for(config))
        single = config_for(tmp_path / f"single-{len(outputs)}", kinds)
        outputs.append(files_for(single))
    assert outputs[0] == outputs[2] == outputs[4] and outputs[1] == outputs[3] == outputs[5]
    (github, gitlab), (github1, gitlab1) = outputs[0], outputs[1]
    for text in (gitlab, gitlab1):
        assert "gitlab.example.com" not in text
        ci = load(text)
        job = ci["platform"] if "platform" in ci else ci["release"]
        logins = [line for line in job["script"] if "docker login" in line]
        assert logins[0] == ('echo "$CI_REGISTRY_PASSWORD" | docker login --username "$CI_REGISTRY_USER" '
                             '--password-stdin "$CI_REGISTRY"')
        assert ci["variables"]["CACHE_REF"] == "$CI_REGISTRY/acme/app:latest"
        assert "# gl: release.yml leaves `registry:` out: this project's registry, $CI_REGISTRY of the\n" in text
    for text in (github, github1):        # GitHub: what release itself uses outside GitLab CI
        hosts = [s["with"].get("registry") for job in load(text)["jobs"].values() for s in uses(job, "docker/login-action@")]
        assert "registry.gitlab.com" in hosts
        assert "# gl: release.yml leaves `registry:` out, so here (outside GitLab CI) it is\n# registry.gitlab.com" in text
    validate_all(tmp_path, [outputs[0], outputs[1]])


def test_an_explicit_gitlab_host_is_written_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("CI_REGISTRY", "gitlab.example.com:5050")
    _, gitlab = files_for(config_for(tmp_path, ["gitlab"]))
    assert "--password-stdin registry.gitlab.com\n" in gitlab
    assert "leaves `registry:` out" not in gitlab


def test_a_vcs_install_gets_git_in_the_python_image(tmp_path):
    """python:*-alpine has no git, and pip clones a git+ spec: every job that installs release
    adds it (the merge job without the docker CLI it does not need)."""
    config = config_for(tmp_path, ["generic"], ["linux/amd64", "linux/arm64"])
    spec = "release-pipeline @ git+https://github.com/acme/release.git@" + "0" * 40
    ci = load(render("gitlab", build_context(config, config_path="release.yml", versions=VERSIONS, install=spec)))
    assert ci["default"]["before_script"][:1] == ["apk add --no-cache docker-cli git"]
    assert ci["release"]["before_script"] == [
        "apk add --no-cache git", f"pip install --quiet --root-user-action=ignore '{spec}'"]
    plain = load(files_for(config)[1])
    assert plain["default"]["before_script"][0] == "apk add --no-cache docker-cli"
