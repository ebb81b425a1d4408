"""templates/release.yml (the release GitLab CI/CD component) and
`release ci generate gitlab --use-component`.

check-jsonschema's vendor.gitlab-ci schema (GitLab's own ci.json) knows `spec:` as a top-level
key of its own: the header document validates as it is. The jobs document holds `$[[ ]]`
expressions that GitLab replaces before it validates anything (an array input becomes an
array), so it is validated the way GitLab sees it: interpolated, with the defaults and with
other inputs. Its script runs here with stubs for pip and release.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline.ci.context import build_context, component_reference
from pipeline.ci.render import load_versions, render
from pipeline.errors import UsageError
from pipeline.model.config.loader import load_config
from tests.support.ciyaml import check_jsonschema, load

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "templates" / "release.yml"
VERSIONS = load_versions(None)
COMPONENT_CONTEXT = {"name": "release", "sha": "c0ffee" + "0" * 34, "version": "1.4.0",
                     "reference": "1.4.0"}
EXPRESSION = re.compile(r"\$\[\[\s*(inputs|component)\.([\w-]+)\s*\]\]")


def documents() -> tuple[str, str]:
    header, sep, jobs = COMPONENT.read_text().partition("\n---\n")
    assert sep, "the spec header ends with a --- line"
    return header + "\n", jobs


def spec() -> dict:
    return load(documents()[0])["spec"]


def interpolate(node, inputs: dict, component: dict = COMPONENT_CONTEXT):
    """GitLab's interpolation, on the loaded document: a value that is one whole expression
    becomes the input's value (an array input: an array); inside a longer string, its text."""
    def value(kind, name):
        return (inputs if kind == "inputs" else component)[name]

    if isinstance(node, dict):
        return {interpolate(k, inputs, component): interpolate(v, inputs, component) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, inputs, component) for v in node]
    if isinstance(node, str):
        whole = EXPRESSION.fullmatch(node.strip())
        if whole:
            return copy.deepcopy(value(*whole.groups()))
        return EXPRESSION.sub(lambda m: str(value(*m.groups())), node)
    return node


def with_defaults(**given) -> dict:
    inputs = {name: copy.deepcopy(i.get("default")) for name, i in spec()["inputs"].items()}
    unknown = set(given) - set(inputs)
    assert not unknown, f"not inputs of the component: {unknown}"
    return {**inputs, **given}


def component_jobs(**given) -> dict:
    return interpolate(load(documents()[1]), with_defaults(**given))


# ---------------------------------------------------------------------------- the component file


def test_both_documents_pass_the_gitlab_ci_schema(tmp_path):
    header, _ = documents()
    (tmp_path / "header.yml").write_text(header)
    files = [tmp_path / "header.yml"]
    yaml = YAML()
    for i, inputs in enumerate([{}, {"stage": "release", "registries": "hub,gl", "args": '--jobs 8',
                                     "rules": [{"if": "$CI_COMMIT_TAG =~ /^v/", "when": "manual"}],
                                     "install": "git+https://gitlab.example.com/t/release.git@v1"}]):
        path = tmp_path / f"jobs-{i}.yml"
        with path.open("w") as fh:
            yaml.dump(component_jobs(**inputs), fh)
        files.append(path)
    assert check_jsonschema("vendor.gitlab-ci", files)["status"] == "ok"
    # the raw jobs document is not what GitLab validates: the array input is still a string there
    (tmp_path / "raw.yml").write_text(documents()[1])
    raw = check_jsonschema("vendor.gitlab-ci", [tmp_path / "raw.yml"])
    assert raw["status"] == "fail" and "rules" in json.dumps(raw["errors"])
    # and the header check has teeth: a context field GitLab does not have
    (tmp_path / "bad.yml").write_text(header.replace("component: [sha, reference]", "component: [project_path]"))
    assert check_jsonschema("vendor.gitlab-ci", [tmp_path / "bad.yml"])["status"] == "fail"


def test_every_expression_names_a_declared_input_or_context_field():
    declared = spec()
    used = EXPRESSION.findall(documents()[1])
    inputs = {name for kind, name in used if kind == "inputs"}
    fields = {name for kind, name in used if kind == "component"}
    assert inputs == set(declared["inputs"])                 # each input is used, none is missing
    assert fields <= set(declared["component"]) <= {"name", "sha", "version", "reference"}
    assert "$[[" not in documents()[0].split("spec:", 1)[1].replace("$[[ component.sha ]]", "")


def test_inputs_and_defaults():
    inputs = spec()["inputs"]
    assert inputs["version"]["default"] == "$CI_COMMIT_TAG"
    assert inputs["config"]["default"] == "release.yml"
    assert inputs["stage"]["default"] == "deploy"            # a stage every pipeline has
    assert inputs["install"]["default"] == inputs["project"]["default"] == inputs["args"]["default"] == ""
    assert inputs["rules"] == {"description": "When the job runs.", "type": "array",
                               "default": [{"if": "$CI_COMMIT_TAG"}]}
    # the images the generator pins (versions.yml) are the component's defaults too
    assert inputs["image"]["default"] == VERSIONS["gitlab"]["image"]
    assert inputs["dind"]["default"] == VERSIONS["gitlab"]["dind"]
    assert len(spec()["description"]) <= 256


def test_the_job_with_default_inputs():
    job = component_jobs()["release"]
    assert job["stage"] == "deploy" and job["rules"] == [{"if": "$CI_COMMIT_TAG"}]
    assert job["services"] == [{"name": VERSIONS["gitlab"]["dind"], "alias": "docker"}]
    assert job["variables"]["DOCKER_HOST"] == "tcp://docker:2376"
    assert job["variables"]["RELEASE_INPUT_VERSION"] == "$CI_COMMIT_TAG"      # expanded at run time
    assert job["variables"]["RELEASE_CONFIG"] == "release.yml"                # release's own env var
    assert job["variables"]["RELEASE_COMPONENT_SHA"] == COMPONENT_CONTEXT["sha"]
    assert job["artifacts"] == {"reports": {"dotenv": "release.env"}}
    assert job["resource_group"] == "release"
    # inputs that are data reach the script as variables, never as its text
    script = "\n".join(load(documents()[1])["release"]["script"])
    for name in ("version", "config", "registries", "project", "install", "extras"):
        assert f"inputs.{name} ]]" not in script


def expand(value: str, env: dict) -> str:
    """GitLab's expansion of $VAR / ${VAR} in a variable's value."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def run_script(job: dict, tmp_path: Path, extra_env: dict | None = None) -> tuple[subprocess.CompletedProcess, list]:
    """The job's script in one shell (as the runner runs it), pip/release/git as stubs that
    record their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    for name in ("pip", "release", "git", "apk"):
        (bin_dir / name).write_text(f"#!/bin/sh\n{{ printf '%s\\0' {name} \"$@\"; printf '\\n'; }} >> '{calls}'\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "CI_COMMIT_TAG": "v1.4.2",
           "CI_SERVER_PROTOCOL": "https", "CI_SERVER_URL": "https://gitlab.example.com/gl",
           "CI_JOB_TOKEN": "job-token", "CACHE_REF": "registry.example.com/a:latest", **(extra_env or {})}
    for name, value in job["variables"].items():
        env[name] = expand(str(value), env)
    script = "set -e\n" + "\n".join(job["script"]) + "\n"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, env=env,
                         cwd=tmp_path)
    recorded = [line.split("\0")[:-1] for line in calls.read_text().splitlines()] if calls.exists() else []
    return out, recorded


def test_script_installs_release_at_the_components_commit_and_releases(tmp_path):
    job = component_jobs(project="tools/release", extras="aws,gcp", registries="hub, gl",
                         args='--cache-from "$CACHE_REF" --jobs 8')["release"]
    out, calls = run_script(job, tmp_path)
    assert out.returncode == 0, out.stderr
    sha = COMPONENT_CONTEXT["sha"]
    assert calls == [
        ["pip", "install", "--quiet", "--root-user-action=ignore",
         f"release-pipeline[aws,gcp] @ git+https://gitlab-ci-token:job-token@gitlab.example.com/gl/tools/release.git@{sha}"],
        ["release", "tags", "v1.4.2"],
        ["release", "build-push", "v1.4.2", "--registry", "hub", "--registry", "gl", "--dotenv", "release.env",
         "--cache-from", "registry.example.com/a:latest", "--jobs", "8"]]
    assert "release from tools/release@1.4.0" in out.stdout


def test_script_with_install_or_without_a_project(tmp_path):
    job = component_jobs(install="release-pipeline @ https://example.com/r.whl", version="1.0.0")["release"]
    (tmp_path / "a").mkdir()
    out, calls = run_script(job, tmp_path / "a")
    assert out.returncode == 0, out.stderr
    assert calls[0][-1] == "release-pipeline @ https://example.com/r.whl"
    assert calls[-1] == ["release", "build-push", "1.0.0", "--dotenv", "release.env"]
    (tmp_path / "b").mkdir()
    out, calls = run_script(component_jobs()["release"], tmp_path / "b")
    assert out.returncode == 2 and "set the input project" in out.stderr and calls == []


# ---------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("value", ["$CI_SERVER_FQDN/tools/release/release@1.0.0",
                                   "gitlab.example.com/a/b/c/release@~latest",
                                   "${CI_SERVER_FQDN}/g/p/release@" + "a" * 40,
                                   "gitlab.example.com:8443/g/p/release@main"])
def test_component_reference_accepts_full_paths(value):
    assert component_reference(value) == value


@pytest.mark.parametrize("value, problem", [
    ("$CI_SERVER_FQDN/tools/release/release", "no @VERSION"),
    ("$CI_SERVER_FQDN/tools/release@1.0.0", "not HOST/GROUP/PROJECT/COMPONENT"),
    ("tools/release/release@1.0", "not HOST/GROUP/PROJECT/COMPONENT"),      # no host
    ("tools/x/release/release@1.0", "not a host name"),
    ("$CI_PROJECT_PATH/x/release/release@1", "not a host name"),
    ("gitlab.com/to ols/release/release@1", "not a GitLab group"),
    ("gitlab.com/tools/release/release@", "empty"),
    ("gitlab.com/tools/release/release@1;id", "characters"),
])
def test_component_reference_refuses_anything_else(value, problem):
    with pytest.raises(UsageError, match=re.escape(problem)) as info:
        component_reference(value)
    assert "HOST/GROUP/PROJECT/release@VERSION" in info.value.hint


# ---------------------------------------------------------------------------- --use-component

USE = "$CI_SERVER_FQDN/tools/release/release@1.4.0"
REGISTRIES = {
    "generic": "{name: corp, registry: registry.example.com, repository: team/app}",
    "gcr": "{name: gar, type: gcr, registry: europe-docker.pkg.dev, repository: proj/images/app}",
    "gitlab": "{name: gl, type: gitlab, registry: registry.gitlab.com, repository: acme/app}",
    "loopback": "{name: local, registry: 'localhost:5000', repository: team/app}",
}


def config_for(tmp_path, kinds, platforms=()):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    image = "{name: app" + (f", platforms: [{', '.join(platforms)}]" if platforms else "") + "}"
    lines = "".join(f"  - {REGISTRIES[k]}\n" for k in kinds)
    (tmp_path / "release.yml").write_text(f"image: {image}\nregistries:\n{lines}")
    return load_config(tmp_path / "release.yml")


def gitlab_file(config, **kw) -> str:
    return render("gitlab", build_context(config, config_path="release.yml", versions=VERSIONS,
                                          install="release-pipeline==1.0", use_component=USE, **kw))


def merged(ci: dict) -> dict:
    """What GitLab makes of the file: the component's jobs (with the inputs given), and this
    file's keys laid over them (hashes merged key by key, anything else replaced)."""
    def merge(base, over):
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return copy.deepcopy(over)

    (include,) = ci["include"]
    assert include["component"] == USE
    out = component_jobs(**include["inputs"])
    for key, value in ci.items():
        if key != "include":
            out[key] = merge(out.get(key), value)
    return out


def test_the_release_job_comes_from_the_component(tmp_path):
    text = gitlab_file(config_for(tmp_path, ["generic", "gcr", "gitlab"]))
    ci = load(text)
    assert ci["include"] == [{"component": USE, "inputs": {
        "version": "$CI_COMMIT_TAG", "stage": "release", "project": "tools/release", "extras": "gcp",
        "args": '--cache-from "$CACHE_REF"'}}]
    override = ci["release"]
    assert "script" not in override and "stage" not in override      # the component's
    assert override["before_script"][0] == "apk add --no-cache docker-cli"
    logins = [line for line in override["before_script"] if "docker login" in line]
    assert [line.rsplit(" ", 1)[1] for line in logins] == ["registry.example.com", "registry.gitlab.com"]
    assert "GCP_ID_TOKEN" in override["id_tokens"]
    assert override["rules"][0]["if"].startswith("$CI_COMMIT_TAG =~ /^v?")
    assert "# The release job is the CI/CD component " + USE in text

    job = merged(ci)["release"]
    assert job["stage"] == "release" and job["stage"] in ci["stages"]
    assert job["rules"] == override["rules"]                        # this file's tag rules win
    assert job["before_script"] == override["before_script"]
    assert job["script"][-1].rstrip().endswith('--dotenv release.env --cache-from "$CACHE_REF"')
    assert job["services"] == [{"name": VERSIONS["gitlab"]["dind"], "alias": "docker"}]
    # the build job still installs release itself, from default:
    assert ci["default"]["before_script"][-1].endswith("release-pipeline==1.0")


def test_use_component_files_pass_the_schema_as_written_and_as_merged(tmp_path):
    files = []
    yaml = YAML()
    for i, (kinds, platforms) in enumerate([(["generic", "gcr", "gitlab"], ()),
                                             (["loopback", "generic"], ("linux/arm64",)),
                                             (["generic"], ("linux/amd64", "linux/arm64"))]):
        base = tmp_path / str(i)
        base.mkdir()
        text = gitlab_file(config_for(base, kinds, platforms))
        (base / "as-written.yml").write_text(text)
        files.append(base / "as-written.yml")
        ci = load(text)
        if "include" in ci:
            with (base / "merged.yml").open("w") as fh:
                yaml.dump(merged(ci), fh)
            files.append(base / "merged.yml")
    assert check_jsonschema("vendor.gitlab-ci", files)["status"] == "ok"


def test_loopback_services_and_qemu_come_with_the_override(tmp_path):
    ci = load(gitlab_file(config_for(tmp_path, ["loopback", "generic"], ["linux/arm64"])))
    job = merged(ci)["release"]
    assert job["services"] == [{"name": VERSIONS["gitlab"]["dind"], "alias": "docker"},
                               {"name": "registry:2", "alias": "registry-5000"}]
    assert job["before_script"][1] == f"docker run --privileged --rm {VERSIONS['gitlab']['binfmt']} --install arm64"


def test_several_platforms_keep_their_own_jobs(tmp_path):
    text = gitlab_file(config_for(tmp_path, ["generic"], ["linux/amd64", "linux/arm64"]))
    ci = load(text)
    assert "include" not in ci and {"platform", "release"} <= set(ci)
    assert ci["release"]["script"][-1].startswith("release manifest merge")
    assert "with several platforms this file keeps its own platform and release jobs" in text


def test_a_bad_component_is_a_usage_error(tmp_path):
    config = config_for(tmp_path, ["generic"])
    with pytest.raises(UsageError, match="--use-component"):
        build_context(config, config_path="release.yml", versions=VERSIONS, install=".",
                      use_component="tools/release@1")
    assert build_context(config, config_path="release.yml", versions=VERSIONS, install=".")["component"] is None
