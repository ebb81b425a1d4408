"""`release ci generate`: the generated GitHub / GitLab files for several release.yml shapes.

Every file is validated with check-jsonschema's built-in (vendored) schemas, offline: the
subprocess gets proxies that refuse every connection. Then the structure is checked: triggers,
permissions, which login appears for which registry. YAML is read with ruamel (YAML 1.2), so
GitHub's `on:` stays a string key (PyYAML would turn it into True).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.ci.render import load_versions
from pipeline.cli.main import cli
from tests.support.ciyaml import check_jsonschema, load

ROOT = Path(__file__).resolve().parents[2]

# Issue 13: without --install or ci.install, the generated CI installs release from where the
# running release came from (PEP 610 direct_url.json, pipeline/ci/install.py). The development
# install is editable, which a runner cannot use (exit 2), so these tests run as if release had
# been installed from a git commit.
ORIGIN_COMMIT = "0123456789abcdef0123456789abcdef01234567"
ORIGIN = json.dumps({"url": "https://github.com/acme/release.git",
                     "vcs_info": {"vcs": "git", "commit_id": ORIGIN_COMMIT,
                                  "requested_revision": "main"}})
ORIGIN_SPEC = f"git+https://github.com/acme/release.git@{ORIGIN_COMMIT}"


@pytest.fixture(scope="module", autouse=True)
def installed_from_a_git_commit():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipeline.ci.install.read_direct_url", lambda *_: ORIGIN)
        yield


REGISTRY = {
    "generic": "{name: corp, registry: registry.example.com, repository: team/app}",
    "loopback": "{name: local, registry: 'localhost:5000', repository: team/app}",
    "env": "{name: corp-env, registry: r2.example.com, repository: team/app, "
           "username_env: CORP_USER, password_env: CORP_PASS}",
    "dockerhub": "{name: dockerhub, type: dockerhub, registry: docker.io, repository: acme/app}",
    "ecr": "{name: aws, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, repository: app}",
    "gcr": "{name: gar, type: gcr, registry: europe-docker.pkg.dev, repository: proj/images/app}",
    "acr": "{name: azure, type: acr, registry: acme.azurecr.io, repository: app}",
    "ghcr": "{name: gh, type: ghcr, registry: ghcr.io, repository: acme/app}",
    "gitlab": "{name: gl, type: gitlab, registry: registry.gitlab.com, repository: acme/app}",
}
PRERELEASE_RULES = "tags:\n  - type=match,pattern=^v(\\d+\\.\\d+\\.\\d+-rc\\.\\d+)$,group=1\nflavor:\n  - latest=false\n"

SHAPES = {**{kind: ([kind], "") for kind in REGISTRY},
          "all": (list(REGISTRY), ""),
          "prerelease-only": (["generic"], PRERELEASE_RULES)}

# Several platforms: (image.platforms, registries in release.yml order; the first gets the digests).
MATRIX_SHAPES = {
    "two-platforms": (["linux/amd64", "linux/arm64"], ["ghcr", "ecr", "loopback", "generic"]),
    "three-platforms": (["linux/amd64", "linux/arm64", "linux/arm/v7"],
                        ["ecr", "dockerhub", "env", "gitlab", "gcr"]),
    "env-first": (["linux/arm64", "linux/arm/v7"], ["env", "acr", "ghcr"]),
    "gitlab-first": (["linux/amd64", "linux/386", "linux/riscv64"], ["gitlab", "generic"]),
}
# GitHub: platform -> (runner, setup-qemu-action platforms); GitLab: platform -> binfmt arch.
GITHUB_LEG = {"linux/amd64": ("ubuntu-24.04", None), "linux/arm64": ("ubuntu-24.04-arm", None),
              "linux/arm/v7": ("ubuntu-24.04", "arm"), "linux/386": ("ubuntu-24.04", None),
              "linux/riscv64": ("ubuntu-24.04", "riscv64")}
GITLAB_QEMU = {"linux/amd64": None, "linux/arm64": "arm64", "linux/arm/v7": "arm", "linux/386": None,
               "linux/riscv64": "riscv64"}

OIDC_ACTIONS = {"ecr": "aws-actions/configure-aws-credentials@", "gcr": "google-github-actions/auth@",
                "acr": "azure/login@"}
OIDC_TOKENS = {"ecr": "AWS_ID_TOKEN", "gcr": "GCP_ID_TOKEN", "acr": "AZURE_ID_TOKEN"}
LOGIN_ACTION = "docker/login-action@"
LOGIN_HOSTS = {"generic": "registry.example.com", "dockerhub": "docker.io", "ghcr": "ghcr.io",
               "gitlab": "registry.gitlab.com"}

# Pinned in ci-templates/versions.yml (bumped there, not here).
DIND = load_versions(None)["gitlab"]["dind"]
BINFMT = load_versions(None)["gitlab"]["binfmt"]
# The jobs that release: tag pushes, and workflow_dispatch (a re-release of inputs.version).
RELEASING = "${{ startsWith(github.ref, 'refs/tags/') || github.event_name == 'workflow_dispatch' }}"
VERSION_EXPR = "${{ inputs.version || github.ref_name }}"

# Build cache. GitHub: buildx + the Actions cache runtime, then these flags (per-platform jobs add
# scope=SLUG). GitLab: --cache-from "$CACHE_REF", `latest` of the first registry that is not a
# loopback service (none: no cache); a GitLab registry through $CI_REGISTRY, its host in GitLab CI.
BUILDX_ACTION = "docker/setup-buildx-action@"
RUNTIME_ACTION = "crazy-max/ghaction-github-runtime@"
GHA_CACHE = " --cache-from type=gha --cache-to type=gha,mode=max,ignore-error=true"
GITLAB_CACHE = ' --cache-from "$CACHE_REF"'
CACHE_REFS = {"generic": "registry.example.com/team/app:latest", "loopback": None,
              "env": "r2.example.com/team/app:latest", "dockerhub": "docker.io/acme/app:latest",
              "ecr": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:latest",
              "gcr": "europe-docker.pkg.dev/proj/images/app:latest", "acr": "acme.azurecr.io/app:latest",
              "ghcr": "ghcr.io/acme/app:latest", "gitlab": "$CI_REGISTRY/acme/app:latest"}


def write_project(base: Path, kinds: list[str], extra: str = "") -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "app").mkdir(exist_ok=True)
    (base / "app" / "Dockerfile").write_text("FROM scratch\n")
    registries = "\n".join(f"  - {REGISTRY[k]}" for k in kinds)
    (base / "release.yml").write_text(f"image:\n  name: app\n  context: app\n{extra}registries:\n{registries}\n")
    return base


def generate(project: Path, *args: str, env: dict | None = None):
    cwd = os.getcwd()
    os.chdir(project)
    try:
        return CliRunner().invoke(cli, ["ci", "generate", *args], env=env or {})
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Every shape generated once: {name: (project dir, github text, gitlab text)}."""
    out = {}
    for name, (kinds, extra) in SHAPES.items():
        project = write_project(tmp_path_factory.mktemp(name.replace("-", "_")), kinds, extra)
        result = generate(project, "all")
        assert result.exit_code == 0, result.output
        out[name] = (project, (project / ".github/workflows/release.yml").read_text(),
                     (project / ".gitlab-ci.yml").read_text())
    return out


@pytest.fixture(scope="module")
def matrix_shapes(tmp_path_factory):
    """The MATRIX_SHAPES generated once: {name: (project dir, github text, gitlab text)}."""
    out = {}
    for name, (platforms, kinds) in MATRIX_SHAPES.items():
        project = with_platforms(write_project(tmp_path_factory.mktemp(name.replace("-", "_")), kinds),
                                 platforms)
        result = generate(project, "all")
        assert result.exit_code == 0, result.output
        out[name] = (project, (project / ".github/workflows/release.yml").read_text(),
                     (project / ".gitlab-ci.yml").read_text())
    return out


def steps_using(job: dict, prefix: str) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(prefix)]


def runs(job: dict) -> list[str]:
    """The `run:` lines of a job's steps, in order."""
    return [s["run"] for s in job["steps"] if "run" in s]


def building_step(job: dict) -> dict:
    """The step of a job that runs release to build (ci build / build-push)."""
    (step,) = [s for s in job["steps"] if re.search(r"\brelease .*\b(ci build|build-push)\b", s.get("run", ""))]
    return step


def assert_cached_build(job: dict, scope: str | None = None) -> None:
    """The job's build runs with the Actions cache: Buildx is set up before it (after QEMU, so the
    builder sees the emulators), the cache runtime is exposed before it, and the flags are on it."""
    steps, step = job["steps"], building_step(job)
    (buildx,) = steps_using(job, BUILDX_ACTION)
    (runtime,) = steps_using(job, RUNTIME_ACTION)
    assert steps.index(buildx) < steps.index(step) and steps.index(runtime) < steps.index(step)
    assert all(steps.index(q) < steps.index(buildx) for q in steps_using(job, "docker/setup-qemu-action@"))
    assert step["run"].endswith(GHA_CACHE if scope is None else
                                f' --cache-from "type=gha,scope={scope}" --cache-to "type=gha,mode=max,ignore-error=true,scope={scope}"')


def first_cache_ref(kinds) -> str | None:
    return next((CACHE_REFS[k] for k in kinds if CACHE_REFS[k]), None)


# ---------------------------------------------------------------------------- validators


def test_every_generated_file_passes_the_schemas(shapes, matrix_shapes):
    projects = [p for p, _, _ in [*shapes.values(), *matrix_shapes.values()]]
    github = [p / ".github/workflows/release.yml" for p in projects]
    gitlab = [p / ".gitlab-ci.yml" for p in projects]
    github.append(ROOT / ".github/workflows/release.yml")
    github.append(ROOT / ".github/workflows/test.yml")       # this repository's own tests
    gitlab.append(ROOT / ".gitlab-ci.yml")
    result = check_jsonschema("vendor.github-workflows", github)
    assert result["status"] == "ok", result
    result = check_jsonschema("vendor.gitlab-ci", gitlab, "--data-transform", "gitlab-ci")
    assert result["status"] == "ok", result


def test_one_release_at_a_time_per_repository(shapes, matrix_shapes):
    """Issue 13: tags v1.2.3 and v1.3.0 pushed together raced to move `latest` and `1`. The job
    that moves tags runs one at a time per repository, queued, never cancelled."""
    for _, github, gitlab in [*shapes.values(), *matrix_shapes.values()]:
        wf, ci = load(github), load(gitlab)
        assert wf["jobs"]["release"]["concurrency"] == {
            "group": "release-${{ github.repository }}", "cancel-in-progress": False}
        assert ci["release"]["resource_group"] == "release"


def test_this_repository_runs_its_tests_and_the_drift_check_in_ci():
    """The README says CI runs the test command and `release ci generate all --check`."""
    import yaml
    workflow = yaml.safe_load((ROOT / ".github/workflows/test.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert any("bash .ci/run" in r for r in runs)
    assert any(r.strip() == ".venv/bin/release ci generate all --check" for r in runs)
    assert workflow["permissions"] == {"contents": "read"}
    assert all("${{" not in r for r in runs)


def test_the_validator_does_catch_a_broken_workflow(shapes, tmp_path):
    _, github, gitlab = shapes["all"]
    bad = tmp_path / "bad.yml"
    bad.write_text(github.replace("contents: read", "contents: reed", 1))
    assert check_jsonschema("vendor.github-workflows", [bad])["status"] == "fail"
    bad.write_text(gitlab.replace("dotenv: release.env", "dotenv: 42"))
    assert check_jsonschema("vendor.gitlab-ci", [bad])["status"] == "fail"


def test_the_validator_does_catch_a_broken_matrix(matrix_shapes, tmp_path):
    _, github, gitlab = matrix_shapes["three-platforms"]
    bad = tmp_path / "bad.yml"
    bad.write_text(github.replace("    needs: platform\n", "    needs: {job: platform}\n"))
    assert check_jsonschema("vendor.github-workflows", [bad])["status"] == "fail"
    bad.write_text(gitlab.replace("    matrix:\n      - PLATFORM:", "    matrix:\n      PLATFORM:"))
    assert check_jsonschema("vendor.gitlab-ci", [bad])["status"] == "fail"      # a map, not a list


# ---------------------------------------------------------------------------- GitHub structure


@pytest.mark.parametrize("shape", list(SHAPES))
def test_github_workflow_structure(shapes, shape):
    _, text, _ = shapes[shape]
    assert text.startswith("# Generated by `release ci generate github` from release.yml.")
    wf = load(text)
    kinds = SHAPES[shape][0]
    assert set(wf["on"]) == {"push", "pull_request", "workflow_dispatch"}
    assert wf["on"]["push"]["branches"] == ["main"]
    if shape == "prerelease-only":
        assert wf["on"]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+-rc.[0-9]+"]
    else:
        assert wf["on"]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+*", "[0-9]+.[0-9]+.[0-9]+*"]
    assert wf["permissions"] == {"contents": "read"}
    assert "${{ github.ref }}" in wf["concurrency"]["group"]

    build, release = wf["jobs"]["build"], wf["jobs"]["release"]
    # Pull requests and the default branch: build only, no credentials at all.
    assert build["if"] == "${{ github.event_name != 'workflow_dispatch' && !startsWith(github.ref, 'refs/tags/') }}"
    assert build["permissions"] == {"contents": "read"}
    build_text = json.dumps(build)
    assert "secrets." not in build_text and "vars." not in build_text
    assert runs(build)[-2:] == ["release validate", "release ci build" + GHA_CACHE]
    assert_cached_build(build)
    assert "build-push" not in build_text

    # Tags: the release, with the version from the tag.
    assert release["if"] == RELEASING
    step = next(s for s in release["steps"] if s.get("id") == "release")
    assert step["env"]["VERSION"] == VERSION_EXPR
    assert step["run"] == 'release build-push "$VERSION"' + GHA_CACHE
    assert_cached_build(release)
    assert set(release["outputs"]) == {"version", "digest", "tags"}
    install = next(s for s in release["steps"] if s.get("name") == "Install release")
    assert install["run"].startswith("pipx install ")

    expected = {"contents": "read"}
    if "ghcr" in kinds:
        expected["packages"] = "write"
    if {"ecr", "gcr", "acr"} & set(kinds):
        expected["id-token"] = "write"
    assert release["permissions"] == expected

    for kind, action in OIDC_ACTIONS.items():
        assert len(steps_using(release, action)) == (1 if kind in kinds else 0), kind
    logins = steps_using(release, LOGIN_ACTION)
    by_registry = {s["with"].get("registry", "docker.io"): s["with"] for s in logins}
    wanted = {k for k in kinds if k in ("generic", "dockerhub", "ghcr", "gitlab")}
    assert len(logins) == len(wanted)
    if "ghcr" in kinds:
        assert by_registry["ghcr.io"] == {"registry": "ghcr.io", "username": "${{ github.actor }}",
                                          "password": "${{ secrets.GITHUB_TOKEN }}"}
    if "dockerhub" in kinds:
        assert by_registry["docker.io"] == {"username": "${{ vars.DOCKERHUB_USERNAME }}",
                                            "password": "${{ secrets.DOCKERHUB_TOKEN }}"}
        assert "#   DOCKERHUB_TOKEN: " in text
    if "generic" in kinds:
        assert by_registry["registry.example.com"]["password"] == "${{ secrets.CORP_PASSWORD }}"
    if "env" in kinds:
        assert step["env"]["CORP_PASS"] == "${{ secrets.CORP_PASS }}"
        assert "#   CORP_PASS: " in text
    if "loopback" in kinds:
        assert release["services"] == {"registry_5000": {"image": "registry:2", "ports": ["5000:5000"]}}
    else:
        assert "services" not in release
    if "ecr" in kinds:
        aws = steps_using(release, OIDC_ACTIONS["ecr"])[0]["with"]
        assert aws == {"role-to-assume": "${{ vars.AWS_ROLE_ARN }}", "aws-region": "eu-west-1"}
        assert "[aws" in install["run"]
    if "gcr" in kinds:
        gcp = steps_using(release, OIDC_ACTIONS["gcr"])[0]["with"]
        assert gcp["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
        moved = release["steps"][release["steps"].index(steps_using(release, OIDC_ACTIONS["gcr"])[0]) + 1]
        assert "RUNNER_TEMP" in moved["run"]  # the credentials file leaves the build context
    # OIDC logins come before the release step, and only in the release job.
    assert release["steps"][-1] is step


def test_github_workflow_for_a_config_in_a_subdirectory(tmp_path):
    project = write_project(tmp_path, ["generic"])
    (project / "deploy").mkdir()
    (project / "release.yml").rename(project / "deploy" / "release.yml")
    (project / "deploy" / "release.yml").write_text(
        (project / "deploy" / "release.yml").read_text().replace("context: app", "context: ../app"))
    result = generate(project, "github", "--default-branch", "trunk", env={"RELEASE_CONFIG": "deploy/release.yml"})
    assert result.exit_code == 0, result.output
    text = (project / ".github/workflows/release.yml").read_text()
    assert text.startswith("# Generated by `release -c deploy/release.yml ci generate github "
                           "--default-branch trunk` from deploy/release.yml.")
    wf = load(text)
    assert wf["on"]["push"]["branches"] == ["trunk"]
    assert wf["jobs"]["release"]["steps"][-1]["run"] == \
        'release -c deploy/release.yml build-push "$VERSION"' + GHA_CACHE


# ---------------------------------------------------------------------------- GitLab structure


@pytest.mark.parametrize("shape", list(SHAPES))
def test_gitlab_file_structure(shapes, shape):
    _, _, text = shapes[shape]
    assert text.startswith("# Generated by `release ci generate gitlab` from release.yml.")
    ci = load(text)
    kinds = SHAPES[shape][0]
    assert ci["variables"]["DOCKER_TLS_CERTDIR"] == "/certs"
    assert ci["variables"]["DOCKER_HOST"] == "tcp://docker:2376"
    assert ci["variables"]["DOCKER_TLS_VERIFY"] == "1"
    assert ci["default"]["services"][0] == {"name": DIND, "alias": "docker"}
    assert [r["if"] for r in ci["workflow"]["rules"]] == [
        '$CI_PIPELINE_SOURCE == "merge_request_event"', "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
        "$CI_COMMIT_TAG"]
    assert [r["if"] for r in ci["build"]["rules"]] == [
        '$CI_PIPELINE_SOURCE == "merge_request_event"', "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]
    ref = first_cache_ref(kinds)
    flag = GITLAB_CACHE if ref else ""
    assert ci["variables"].get("CACHE_REF") == ref
    assert ci["build"]["script"] == ["release validate", "release ci build" + flag]

    release = ci["release"]
    (rule,) = release["rules"]
    if shape == "prerelease-only":
        assert rule["if"] == r"$CI_COMMIT_TAG =~ /^v(\d+\.\d+\.\d+-rc\.\d+)$/"
    else:
        assert rule["if"].startswith("$CI_COMMIT_TAG =~ /^v?(0|[1-9]\\d*)")
    assert release["script"][-1] == 'release build-push "$CI_COMMIT_TAG" --dotenv release.env' + flag
    assert release["artifacts"] == {"reports": {"dotenv": "release.env"}}
    assert ("#   CACHE_REF = " in text) == bool(ref)

    tokens = release.get("id_tokens", {})
    assert ("AWS_ID_TOKEN" in tokens) == ("ecr" in kinds)
    assert ("GCP_ID_TOKEN" in tokens) == ("gcr" in kinds)
    assert ("AZURE_ID_TOKEN" in tokens) == ("acr" in kinds)
    if "ecr" in kinds:
        assert tokens["AWS_ID_TOKEN"] == {"aud": "sts.amazonaws.com"}
        assert any("AWS_WEB_IDENTITY_TOKEN_FILE" in line for line in release["script"])
    if "gcr" in kinds:
        assert tokens["GCP_ID_TOKEN"]["aud"] == "https://iam.googleapis.com/${GCP_WORKLOAD_IDENTITY_PROVIDER}"
        assert any('"type": "external_account"' in line for line in release["script"])
    if "acr" in kinds:
        assert tokens["AZURE_ID_TOKEN"] == {"aud": "api://AzureADTokenExchange"}
        assert any("AZURE_FEDERATED_TOKEN_FILE" in line for line in release["script"])
    logins = [line for line in release["script"] if "docker login" in line]
    if "gitlab" in kinds:
        assert ('echo "$CI_REGISTRY_PASSWORD" | docker login --username "$CI_REGISTRY_USER" '
                '--password-stdin registry.gitlab.com') in logins
        assert "CI_REGISTRY_PASSWORD" not in text.split("workflow:")[0]  # not a variable to set
    assert len(logins) == len({k for k in kinds if k in ("generic", "dockerhub", "ghcr", "gitlab")})
    if "loopback" in kinds:
        assert release["services"][1] == {"name": "registry:2", "alias": "registry-5000"}
    install = ci["default"]["before_script"][-1]
    for kind, extra in (("ecr", "aws"), ("gcr", "gcp"), ("acr", "azure")):
        assert (extra in install) == (kind in kinds)


def test_gitlab_registry_named_by_env_vars_gets_the_job_token(tmp_path):
    project = write_project(tmp_path, [])
    (project / "release.yml").write_text(
        "image: {name: app, context: app}\nregistries:\n"
        "  - {name: gl, type: gitlab, registry: registry.gitlab.com, repository: a/b,"
        " username_env: GL_USER, password_env: GL_PASS}\n")
    assert generate(project, "gitlab").exit_code == 0
    ci = load((project / ".gitlab-ci.yml").read_text())
    assert ci["release"]["variables"] == {"GL_USER": "$CI_REGISTRY_USER", "GL_PASS": "$CI_REGISTRY_PASSWORD"}


# ---------------------------------------------------------------------------- the command


def test_output_is_deterministic(shapes):
    project, github, gitlab = shapes["all"]
    result = generate(project, "github", "--output", "-")
    assert result.exit_code == 0 and result.stdout == github
    result = generate(project, "gitlab", "-o", "-")
    assert result.stdout == gitlab


def test_check_reports_drift_with_a_diff_and_exit_1(tmp_path):
    project = write_project(tmp_path, ["generic"])
    result = generate(project, "all", "--check")
    assert result.exit_code == 1
    assert "(on disk: missing)" in result.output
    assert generate(project, "all").exit_code == 0
    result = generate(project, "all", "--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    workflow = project / ".github/workflows/release.yml"
    workflow.write_text(workflow.read_text().replace("timeout-minutes: 60", "timeout-minutes: 61"))
    result = generate(project, "all", "--check")
    assert result.exit_code == 1
    assert "-    timeout-minutes: 61\n+    timeout-minutes: 60\n" in result.output
    assert "out of date; run: release ci generate github" in result.output
    assert workflow.read_text().count("timeout-minutes: 61") == 1  # --check writes nothing
    # release.yml changes -> drift
    generate(project, "all")
    (project / "release.yml").write_text((project / "release.yml").read_text().replace(
        "registry.example.com", "registry.example.org"))
    assert generate(project, "gitlab", "--check").exit_code == 1


def test_usage_errors(tmp_path):
    project = write_project(tmp_path, ["generic"])
    assert generate(project, "all", "--output", "x.yml").exit_code == 2
    assert generate(project, "github", "--output", "-", "--check").exit_code == 2
    assert generate(project, "bitbucket").exit_code == 2


def test_user_templates(tmp_path):
    project = write_project(tmp_path, ["generic"])
    templates = project / "my-templates"
    templates.mkdir()
    (templates / "gitlab.yml.j2").write_text(
        "# [= command =] from [= config_path =]\nrelease:\n  script:\n    - [= release =] build-push x\n")
    result = generate(project, "all", "--templates", "my-templates")
    assert result.exit_code == 0, result.output
    assert (project / ".gitlab-ci.yml").read_text() == (
        "# release ci generate gitlab --templates my-templates from release.yml\n"
        "release:\n  script:\n    - release build-push x\n")
    assert (project / ".github/workflows/release.yml").read_text().startswith("# Generated by")


def test_install_spec(tmp_path):
    project = write_project(tmp_path, ["ecr"])
    generate(project, "github")
    # the commit release was installed from, never the unpublished release-pipeline==VERSION
    assert f"pipx install 'release-pipeline[aws] @ {ORIGIN_SPEC}'" in \
        (project / ".github/workflows/release.yml").read_text()
    generate(project, "github", "--install", "release-pipeline[aws]>=0.1")
    assert "pipx install 'release-pipeline[aws]>=0.1'" in (project / ".github/workflows/release.yml").read_text()


def test_the_default_install_never_names_the_unpublished_package(shapes, matrix_shapes):
    """Issue 13: `release-pipeline==VERSION` came from no index (the name is unpublished, and
    whoever registers it would run code in release jobs); the default is the origin's commit."""
    for _, github, gitlab in [*shapes.values(), *matrix_shapes.values()]:
        assert "release-pipeline==" not in github and "release-pipeline==" not in gitlab
        assert ORIGIN_SPEC in github and ORIGIN_SPEC in gitlab


def test_this_repository_ci_files_are_up_to_date():
    """`release ci generate all --check` in this repository: its own CI files never drift."""
    result = generate(ROOT, "all", "--check")
    assert result.exit_code == 0, result.output
    text = (ROOT / ".github/workflows/release.yml").read_text()
    assert "pipx install ." in text  # this repository installs release from its checkout


def with_platforms(project: Path, platforms: list[str]) -> Path:
    text = (project / "release.yml").read_text()
    text = re.sub(r"  platforms: \[.*\]\n", "", text)
    (project / "release.yml").write_text(text.replace(
        "  context: app\n", f"  context: app\n  platforms: [{', '.join(platforms)}]\n"))
    return project


def test_one_foreign_platform_gets_qemu_in_a_single_release_job(tmp_path):
    # (linux/arm64 alone runs on the native arm64 runner instead: test_ci_templates_fixes.py)
    project = with_platforms(write_project(tmp_path, ["generic"]), ["linux/riscv64"])
    assert generate(project, "all").exit_code == 0
    wf = load((project / ".github/workflows/release.yml").read_text())
    assert set(wf["jobs"]) == {"build", "release"}   # one platform: no matrix
    for job in ("build", "release"):
        (qemu,) = steps_using(wf["jobs"][job], "docker/setup-qemu-action@")
        assert qemu["with"] == {"platforms": "riscv64"}
    assert wf["jobs"]["release"]["steps"][-1]["run"] == 'release build-push "$VERSION"' + GHA_CACHE
    for job in ("build", "release"):
        assert_cached_build(wf["jobs"][job])
    ci = load((project / ".gitlab-ci.yml").read_text())
    assert ci["default"]["before_script"][-1].endswith("--install riscv64")
    assert set(ci) >= {"build", "release"} and "platform" not in ci
    # amd64 only: no emulation
    with_platforms(project, ["linux/amd64"])
    generate(project, "all")
    assert "setup-qemu" not in (project / ".github/workflows/release.yml").read_text()
    assert "binfmt" not in (project / ".gitlab-ci.yml").read_text()


def test_one_platform_renders_as_no_platform_does(tmp_path):
    """A single platform changes nothing but the QEMU steps a foreign one needs."""
    plain = write_project(tmp_path / "plain", ["generic", "ghcr"])
    one = with_platforms(write_project(tmp_path / "one", ["generic", "ghcr"]), ["linux/amd64"])
    for project in (plain, one):
        assert generate(project, "all").exit_code == 0
    for name in (".github/workflows/release.yml", ".gitlab-ci.yml"):
        assert (plain / name).read_text() == (one / name).read_text()


def test_cli_start_up_does_not_import_jinja():
    code = "import sys, pipeline.cli.main; print(sorted(m for m in ('jinja2', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


# ---------------------------------------------------------------------------- several platforms: the matrix


def expected_permissions(kinds) -> dict:
    out = {"contents": "read"}
    if "ghcr" in kinds:
        out["packages"] = "write"
    if set(OIDC_ACTIONS) & set(kinds):
        out["id-token"] = "write"
    return out


def expected_logins(kinds) -> set[str]:
    """What a job holding credentials for `kinds` logs in to: registry hosts and OIDC clouds."""
    return {LOGIN_HOSTS[k] for k in kinds if k in LOGIN_HOSTS} | {k for k in kinds if k in OIDC_ACTIONS}


def github_logins(job: dict) -> set[str]:
    hosts = {s["with"].get("registry", "docker.io") for s in steps_using(job, LOGIN_ACTION)}
    return hosts | {kind for kind, action in OIDC_ACTIONS.items() if steps_using(job, action)}


def gitlab_logins(job: dict) -> set[str]:
    hosts = {line.rsplit(" ", 1)[1] for line in job["script"] if "docker login" in line}
    return hosts | {kind for kind, token in OIDC_TOKENS.items() if token in job.get("id_tokens", {})}


def expand(text: str, matrix: dict) -> str:
    """A GitHub `${{ matrix.X }}` expression as the runner fills it in for one leg."""
    return re.sub(r"\$\{\{ matrix\.(\w+) \}\}", lambda m: str(matrix.get(m.group(1), "")), text)


def shell(script: str, env: dict) -> list[str]:
    """Run a generated script line with `release` and `docker` as stubs printing their arguments."""
    stubs = 'release() { printf "release %s\\n" "$*"; }; docker() { printf "docker %s\\n" "$*"; }\n'
    out = subprocess.run(["sh", "-ec", stubs + script], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.parametrize("shape", list(MATRIX_SHAPES))
def test_github_matrix_per_platform_and_merge(matrix_shapes, shape):
    platforms, kinds = MATRIX_SHAPES[shape]
    _, text, _ = matrix_shapes[shape]
    wf = load(text)
    assert set(wf["jobs"]) == {"build", "platform", "release"}
    build, leg, merge = wf["jobs"]["build"], wf["jobs"]["platform"], wf["jobs"]["release"]

    # Pull requests: still one `release ci build` (every platform, QEMU for all but amd64/386).
    assert runs(build)[-2:] == ["release validate", "release ci build" + GHA_CACHE]
    assert_cached_build(build)
    emulated = sorted({p.split("/")[1] for p in platforms} - {"amd64", "386"})
    qemu = steps_using(build, "docker/setup-qemu-action@")
    assert sorted(qemu[0]["with"]["platforms"].split(",")) == emulated if emulated else not qemu

    # One leg per platform, in release.yml order, on its native runner or with QEMU.
    tag_only = RELEASING
    assert leg["if"] == tag_only and leg["runs-on"] == "${{ matrix.runner }}"
    include = leg["strategy"]["matrix"]["include"]
    assert set(leg["strategy"]["matrix"]) == {"include"}
    assert [e["platform"] for e in include] == platforms
    for entry in include:
        runner, qemu_arch = GITHUB_LEG[entry["platform"]]
        expected = {"platform": entry["platform"], "slug": entry["platform"].replace("/", "-"),
                    "runner": runner}
        if qemu_arch:
            expected["qemu"] = qemu_arch
        assert entry == expected
    qemu = steps_using(leg, "docker/setup-qemu-action@")
    if any(GITHUB_LEG[p][1] for p in platforms):
        (step,) = qemu
        assert step["if"] == "${{ matrix.qemu }}"       # runs only on the legs that set qemu
        assert step["with"] == {"platforms": "${{ matrix.qemu }}"}
        assert leg["steps"].index(step) < leg["steps"].index(next(s for s in leg["steps"]
                                                                    if "build-push" in s.get("run", "")))
    else:
        assert not qemu and "qemu" not in json.dumps(leg)

    # Credentials of the first registry only; permissions to match.
    first = kinds[0]
    assert github_logins(leg) == expected_logins([first])
    assert leg["permissions"] == expected_permissions([first])
    push = next(s for s in leg["steps"] if "build-push" in s.get("run", ""))
    assert_cached_build(leg, scope="$SLUG")       # one cache scope per platform, from env: SLUG
    assert push["env"]["SLUG"] == "${{ matrix.slug }}"
    assert push["env"]["VERSION"] == VERSION_EXPR
    assert ("CORP_PASS" in push["env"]) == (first == "env")
    assert "services" not in leg
    upload = steps_using(leg, "actions/upload-artifact@")
    assert len(upload) == 1 and leg["steps"][-1] is upload[0]
    assert upload[0]["with"] == {"name": "release-metadata-${{ matrix.slug }}",
                                 "path": "release-metadata/${{ matrix.slug }}.json",
                                 "if-no-files-found": "error"}

    # The merge: after every leg, all registries' credentials, the single-platform job's outputs.
    assert merge["if"] == tag_only and merge["needs"] == "platform"
    assert merge["runs-on"] == "ubuntu-24.04"
    assert merge["permissions"] == expected_permissions(kinds)
    assert github_logins(merge) == expected_logins(kinds)
    assert not steps_using(merge, "docker/setup-qemu-action@")
    assert not steps_using(merge, BUILDX_ACTION) and not steps_using(merge, RUNTIME_ACTION)  # builds nothing
    assert set(merge["outputs"]) == {"version", "digest", "tags"}
    assert all(v.startswith("${{ steps.release.outputs.") for v in merge["outputs"].values())
    (download,) = steps_using(merge, "actions/download-artifact@")
    assert download["with"] == {"pattern": "release-metadata-*", "path": "release-metadata",
                                "merge-multiple": True}
    step = merge["steps"][-1]
    assert step["id"] == "release" and merge["steps"].index(download) < len(merge["steps"]) - 1
    assert step["run"] == 'release manifest merge "$VERSION" --from-metadata release-metadata'
    assert ("CORP_PASS" in step["env"]) == ("env" in kinds)
    assert ("services" in merge) == ("loopback" in kinds)

    # Walk the legs: each writes release-metadata/<slug>.json, uploads exactly that file under a
    # name the merge job's pattern picks up, and the merge reads the directory they land in.
    records = []
    for entry in include:
        env = {k: expand(v, entry) for k, v in push["env"].items() if "secrets." not in v}
        env["VERSION"] = "v1.2.3"
        (line,) = shell(push["run"], env)
        slug = entry["platform"].replace("/", "-")
        assert line == (f"release build-push v1.2.3 --platform {entry['platform']} --push-by-digest "
                        f"--metadata-file release-metadata/{slug}.json "
                        f"--cache-from type=gha,scope={slug} --cache-to type=gha,mode=max,ignore-error=true,scope={slug}")
        assert expand(upload[0]["with"]["path"], entry) == f"release-metadata/{slug}.json"
        name = expand(upload[0]["with"]["name"], entry)
        assert name == f"release-metadata-{slug}" and fnmatch.fnmatch(name, download["with"]["pattern"])
        records.append(slug)
    assert len(set(records)) == len(platforms)   # no two legs overwrite each other's record or cache


@pytest.mark.parametrize("shape", list(MATRIX_SHAPES))
def test_gitlab_parallel_matrix_and_merge(matrix_shapes, shape):
    platforms, kinds = MATRIX_SHAPES[shape]
    _, _, text = matrix_shapes[shape]
    ci = load(text)
    assert ci["stages"] == ["build", "platforms", "release"]
    leg, merge, build = ci["platform"], ci["release"], ci["build"]
    emulated = [a for a in dict.fromkeys(p.split("/")[1] for p in platforms) if a not in ("amd64", "386")]

    # QEMU is no longer in every job's before_script: the build job (all platforms) installs all.
    assert not any("binfmt" in line for line in ci["default"]["before_script"])
    ref = first_cache_ref(kinds)
    assert ref and ci["variables"]["CACHE_REF"] == ref
    assert build["script"][-2:] == ["release validate", "release ci build" + GITLAB_CACHE]
    if emulated:
        assert build["script"][0] == (f"docker run --privileged --rm {BINFMT} --install "
                                      + ",".join(emulated))
    else:
        assert len(build["script"]) == 2

    assert leg["stage"] == "platforms" and leg["rules"] == merge["rules"]
    (rule,) = leg["rules"]
    assert rule["if"].startswith("$CI_COMMIT_TAG =~ ")
    assert leg["parallel"] == {"matrix": [{"PLATFORM": platforms}]}
    assert leg["artifacts"] == {"paths": ["release-metadata/"]}
    first = kinds[0]
    assert gitlab_logins(leg) == expected_logins([first])
    assert set(leg.get("id_tokens", {})) == {OIDC_TOKENS[first]} if first in OIDC_TOKENS else "id_tokens" not in leg
    assert "services" not in leg          # the default: Docker-in-Docker

    # Each leg: binfmt only where the default (amd64) runner needs it, then its own record file.
    command = leg["script"][-1]
    for platform in platforms:
        cache_ref = ref.replace("$CI_REGISTRY", "registry.gitlab.com")     # as GitLab expands it
        env = {"PLATFORM": platform, "CI_COMMIT_TAG": "v1.2.3", "CACHE_REF": cache_ref}
        ran = [line for script in leg["script"][:-1] if "docker login" not in script
               and not script.startswith(("printf", "export", "cat")) for line in shell(script, env)]
        arch = GITLAB_QEMU[platform]
        assert ran == ([f"docker run --privileged --rm {BINFMT} --install {arch}"] if arch
                       else []) + ["release tags v1.2.3"], platform      # QEMU, then the tag gate
        (line,) = shell(command, env)
        slug = platform.replace("/", "-")
        assert line == (f"release build-push v1.2.3 --platform {platform} --push-by-digest "
                        f"--metadata-file release-metadata/{slug}.json --cache-from {cache_ref}")

    # The merge: after every leg (their artifacts come with `needs`), all credentials, dotenv.
    assert merge["stage"] == "release" and merge["needs"] == ["platform"]
    assert merge["script"][-1] == ('release manifest merge "$CI_COMMIT_TAG" --from-metadata release-metadata '
                                   "--dotenv release.env")          # builds nothing: no cache
    assert merge["artifacts"] == {"reports": {"dotenv": "release.env"}}
    # No Docker engine (manifest merge needs none): no dind, no DOCKER_*, no `docker login`; the
    # Docker config it would write is written directly (run in test_ci_templates_fixes.py), and
    # release reads GitLab's CI_REGISTRY_* itself.
    assert merge["inherit"] == {"default": ["image"], "variables": False}
    assert not any("docker login" in line for line in merge["script"])
    written = {h for line in merge["script"] for h in re.findall(r'^ +(\S+) "\$\(auth ', line, re.M)}
    assert written == {"https://index.docker.io/v1/" if k == "dockerhub" else LOGIN_HOSTS[k]
                       for k in kinds if k in ("generic", "dockerhub", "ghcr")}
    assert set(merge.get("id_tokens", {})) == {OIDC_TOKENS[k] for k in kinds if k in OIDC_TOKENS}
    assert not any("binfmt" in line for line in merge["script"])
    if "loopback" in kinds:
        assert merge["services"] == [{"name": "registry:2", "alias": "registry-5000"}]
    else:
        assert "services" not in merge


def test_matrix_header_comments(matrix_shapes):
    _, github, gitlab = matrix_shapes["three-platforms"]
    assert "#   linux/arm64 on ubuntu-24.04-arm\n" in github
    assert "#   linux/arm/v7 on ubuntu-24.04 (QEMU: no native runner)\n" in github
    assert "to aws, the first registry" in github and "release manifest merge TAG" in github
    assert "OIDC (id-token: write, only in the jobs that log in with it)" in github
    assert f"#   linux/arm64 (QEMU: {BINFMT})\n" in gitlab
    assert "#   linux/amd64\n" in gitlab


def test_first_registry_on_loopback_keeps_one_release_job(tmp_path):
    """A registry:2 service lives as long as its job: legs pushing to their own would leave the
    merge nothing to merge, so all platforms build in the release job (QEMU for the foreign)."""
    project = with_platforms(write_project(tmp_path, ["loopback", "generic"]), ["linux/amd64", "linux/arm64"])
    assert generate(project, "all").exit_code == 0
    text = (project / ".github/workflows/release.yml").read_text()
    wf = load(text)
    assert set(wf["jobs"]) == {"build", "release"}
    assert wf["jobs"]["release"]["steps"][-1]["run"] == 'release build-push "$VERSION"' + GHA_CACHE
    assert_cached_build(wf["jobs"]["release"])
    (qemu,) = steps_using(wf["jobs"]["release"], "docker/setup-qemu-action@")
    assert qemu["with"] == {"platforms": "arm64"}
    assert "the first registry (localhost:5000) is a\n# service of the job" in text
    ci = load((project / ".gitlab-ci.yml").read_text())
    assert "platform" not in ci and ci["stages"] == ["build", "release"]
    # The loopback registry starts empty in every job: the cache comes from the second registry.
    assert ci["variables"]["CACHE_REF"] == CACHE_REFS["generic"]
    assert ci["release"]["script"][-1] == 'release build-push "$CI_COMMIT_TAG" --dotenv release.env' + GITLAB_CACHE
    # A loopback registry that is not the first: the matrix, with the service in the merge job.
    with_platforms(write_project(tmp_path / "second", ["generic", "loopback"]), ["linux/amd64", "linux/arm64"])
    assert generate(tmp_path / "second", "github").exit_code == 0
    wf = load((tmp_path / "second/.github/workflows/release.yml").read_text())
    assert "services" not in wf["jobs"]["platform"] and "registry_5000" in wf["jobs"]["release"]["services"]


def test_matrix_with_your_own_versions_file(tmp_path):
    """A versions.yml in --templates sets what it names; the rest (e.g. keys added later) comes
    from the built-in one. No arm64 runner (runner_arm64: '') -> arm64 runs under QEMU."""
    project = with_platforms(write_project(tmp_path, ["generic"]), ["linux/amd64", "linux/arm64"])
    (project / "tpl").mkdir()
    (project / "tpl" / "versions.yml").write_text(
        "github:\n  runner: my-x64\n  runner_arm64: ''\n  upload_artifact: actions/upload-artifact@v6\n")
    assert generate(project, "github", "--templates", "tpl").exit_code == 0
    wf = load((project / ".github/workflows/release.yml").read_text())
    leg = wf["jobs"]["platform"]
    assert leg["strategy"]["matrix"]["include"] == [
        {"platform": "linux/amd64", "slug": "linux-amd64", "runner": "my-x64"},
        {"platform": "linux/arm64", "slug": "linux-arm64", "runner": "my-x64", "qemu": "arm64"}]
    assert steps_using(leg, "actions/upload-artifact@v6")
    assert steps_using(wf["jobs"]["release"], "actions/download-artifact@v8")   # built-in
    assert steps_using(leg, "docker/setup-qemu-action@v4")


# ---------------------------------------------------------------------------- build cache


def github_run_lines(wf: dict) -> list[str]:
    return [step["run"] for job in wf["jobs"].values() for step in job["steps"] if "run" in step]


def test_no_expression_is_ever_inside_a_run(shapes, matrix_shapes):
    """`${{ }}` inside `run:` is pasted into the script before the shell sees it (injection):
    values reach scripts through `env:` only, the cache scope too."""
    texts = [gh for _, gh, _ in [*shapes.values(), *matrix_shapes.values()]]
    texts.append((ROOT / ".github/workflows/release.yml").read_text())
    for text in texts:
        lines = github_run_lines(load(text))
        assert lines and not [line for line in lines if "${{" in line]


def test_only_the_jobs_that_build_get_buildx_and_the_cache_runtime(shapes, matrix_shapes):
    versions = load_versions(None)["github"]
    for _, text, _ in [*shapes.values(), *matrix_shapes.values()]:
        wf = load(text)
        for name, job in wf["jobs"].items():
            builds = any(re.search(r"\brelease .*\b(ci build|build-push)\b", line) for line in runs(job))
            assert bool(steps_using(job, BUILDX_ACTION)) == builds, name
            assert bool(steps_using(job, RUNTIME_ACTION)) == builds, name
            if builds:
                assert_cached_build(job, "$SLUG" if name == "platform" else None)
                # pinned through versions.yml, like every other action
                assert steps_using(job, BUILDX_ACTION)[0]["uses"] == versions["buildx"]
                assert steps_using(job, RUNTIME_ACTION)[0]["uses"] == versions["github_runtime"]
        # the Actions cache needs no permission: the workflow and the build job keep contents: read
        assert wf["permissions"] == {"contents": "read"}
        assert wf["jobs"]["build"]["permissions"] == {"contents": "read"}


def test_cache_is_explained_in_the_headers(shapes, matrix_shapes):
    _, github, gitlab = shapes["all"]
    assert "# Build cache: the jobs that build set up Buildx (docker/setup-buildx-action@v" in github
    assert "--cache-from type=gha --cache-to type=gha,mode=max,ignore-error=true." in github
    assert "#   CACHE_REF = registry.example.com/team/app:latest\n" in gitlab
    _, github, gitlab = matrix_shapes["gitlab-first"]
    assert "each platform job in its own scope=SLUG" in github
    assert "#   CACHE_REF = $CI_REGISTRY/acme/app:latest\n" in gitlab
    _, _, gitlab = shapes["loopback"]      # a registry:2 service starts empty: nothing to import
    assert "CACHE_REF" not in gitlab and "--cache-from" not in gitlab


def test_no_cache_leaves_the_cache_out(tmp_path):
    project = with_platforms(write_project(tmp_path, ["gitlab", "generic"]), ["linux/amd64", "linux/arm64"])
    assert generate(project, "all", "--no-cache").exit_code == 0
    github = (project / ".github/workflows/release.yml").read_text()
    gitlab = (project / ".gitlab-ci.yml").read_text()
    assert github.startswith("# Generated by `release ci generate github --no-cache` from release.yml.")
    assert gitlab.startswith("# Generated by `release ci generate gitlab --no-cache` from release.yml.")
    for text in (github, gitlab):
        assert "--cache-from" not in text and "--cache-to" not in text and "CACHE_REF" not in text
        assert "Build cache" not in text
    assert BUILDX_ACTION not in github and RUNTIME_ACTION not in github
    wf = load(github)
    assert runs(wf["jobs"]["build"])[-1] == "release ci build"
    assert runs(wf["jobs"]["platform"])[-1].endswith('--metadata-file "release-metadata/$SLUG.json"')
    ci = load(gitlab)
    assert ci["build"]["script"][-1] == "release ci build"
    # the header names the command that regenerates the file, so --check agrees with it
    assert generate(project, "all", "--no-cache", "--check").exit_code == 0
    result = generate(project, "github", "--check")
    assert result.exit_code == 1 and "+      - name: Set up Docker Buildx" in result.output


def test_a_config_path_with_yaml_syntax_stays_whole_in_every_command(tmp_path):
    """Issue 13: a config path with ` #` was shell-quoted but not YAML-quoted, so YAML read the
    rest of the line as a comment and the step silently ran without it."""
    import shlex
    project = write_project(tmp_path / "p", ["generic"])
    odd = project / "deploy #1: prod"
    odd.mkdir()
    text = (project / "release.yml").read_text().replace("context: app", "context: ../app")
    (odd / "release.yml").write_text(text)
    (project / "release.yml").unlink()
    cwd = os.getcwd()
    os.chdir(project)
    try:
        result = CliRunner().invoke(cli, ["-c", "deploy #1: prod/release.yml", "ci", "generate", "all"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    wf = load((project / ".github/workflows/release.yml").read_text())
    ci = load((project / ".gitlab-ci.yml").read_text())
    runs = [step["run"] for job in wf["jobs"].values() for step in job["steps"]
            if "release" in step.get("run", "") and "pipx" not in step.get("run", "")]
    runs += [line for job in ci.values() if isinstance(job, dict)
             for line in job.get("script", []) if line.startswith("release")]
    assert len(runs) >= 4
    for run in runs:
        assert shlex.split(run)[:3] == ["release", "-c", "deploy #1: prod/release.yml"], run
    assert "Check deploy #1: prod/release.yml" in [s.get("name") for s in wf["jobs"]["build"]["steps"]]


def test_a_tag_the_rules_reject_fails_in_seconds(shapes, matrix_shapes, tmp_path):
    """Issue 13: GitHub's tag glob starts releases for tags `release tags` rejects (v1.2.3foo).
    Every job that releases checks the tag first, before any login or build."""
    for _, github, gitlab in [*shapes.values(), *matrix_shapes.values()]:
        wf, ci = load(github), load(gitlab)
        for name in ("release", "platform"):
            job = wf["jobs"].get(name)
            if job is None or name == "release" and "platform" in wf["jobs"]:
                continue                     # the merge job builds nothing: the legs checked
            runs = [s.get("run", "") or s.get("uses", "") for s in job["steps"]]
            gate = runs.index('release tags "$VERSION"')
            assert all(i > gate for i, r in enumerate(runs) if "build-push" in r or "login" in r)
        job = ci["platform"] if "platform" in ci else ci["release"]
        assert job["script"].index('release tags "$CI_COMMIT_TAG"') < len(job["script"]) - 1
    project = write_project(tmp_path / "p", ["generic"])
    cwd = os.getcwd()
    os.chdir(project)
    try:
        rejected = CliRunner().invoke(cli, ["tags", "v1.2.3foo"])
    finally:
        os.chdir(cwd)
    assert rejected.exit_code == 2
