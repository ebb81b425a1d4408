"""`release` as a CI step, end to end: the CLI runs with the GitHub Actions / GitLab CI
variables set, against a real engine and real registries; the files it wrote are checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.images import _static_busybox

pytestmark = pytest.mark.integration

RELEASE = [sys.executable, "-m", "pipeline"]
CI_VARS = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITLAB_CI", "CI")
ALLOWED_COMMANDS = re.compile(r"^::(group::.*|endgroup::|add-mask::.*)$")


def run(config: Path, *args: str, env: dict, timeout: int = 300):
    full = {k: v for k, v in os.environ.items() if k not in CI_VARS}
    full.update(env)
    proc = subprocess.run([*RELEASE, "-c", str(config), *args], capture_output=True,
                          env=full, timeout=timeout, cwd=config.parent)
    # bytes, decoded by hand: text=True would turn GitLab's "\r" section markers into "\n"
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def project(tmp_path: Path, registries: list[str], *, retry: str = "") -> Path:
    """A build whose RUN step prints workflow commands (which must not run)."""
    ctx = tmp_path / "app"
    ctx.mkdir()
    shutil.copyfile(_static_busybox(), ctx / "busybox")
    (ctx / "busybox").chmod(0o755)
    (ctx / "payload.txt").write_text(f"ci step {uuid.uuid4()}\n")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        "COPY payload.txt /payload.txt\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo \'::error title=injected::from the build\'; '
        "/bin/busybox echo '##[set-output name=digest;]sha256:evil'; "
        "/bin/busybox echo '  ::add-mask::nothing'\"]\n")
    config = tmp_path / "release.yml"
    config.write_text(f"image:\n  name: citest-{uuid.uuid4().hex[:8]}\n  context: app\n"
                      "registries:\n" + "\n".join(registries) + "\n" + retry)
    return config


def block(name: str, reg, repo: str, *, auth: bool = False) -> str:
    lines = [f"  - name: {name}", f"    registry: {reg.host}", f"    repository: {repo}"]
    if auth:
        lines += ["    username_env: CI_TEST_USER", "    password_env: CI_TEST_PASS"]
    if reg.ca_file:
        lines.append(f"    ca_file: {reg.ca_file}")
    return "\n".join(lines)


def github_outputs(text: str) -> dict:
    values, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        if "<<" in lines[i]:
            name, delim = lines[i].split("<<", 1)
            j = lines.index(delim, i + 1)
            values[name] = lines[i + 1:j]
            i = j + 1
        else:
            i += 1
    return values


def assert_no_injected_command(stderr: str, stdout: str):
    for line in re.split(r"\r\n|\r|\n", stderr + "\n" + stdout):
        if line.lstrip().startswith("::"):
            assert ALLOWED_COMMANDS.match(line), f"workflow command from untrusted text: {line!r}"
        assert "##[" not in line, line


@pytest.fixture
def repo():
    return f"ci/app-{uuid.uuid4().hex[:8]}"


def test_github_actions_step(tmp_path, docker_engine, plain_registry, auth_tls_registry, repo):
    config = project(tmp_path, [block("plain", plain_registry, repo),
                                block("secure", auth_tls_registry, repo, auth=True)])
    out, summary = tmp_path / "github_output", tmp_path / "step_summary"
    password = auth_tls_registry.password
    proc = run(config, "build-push", "v1.2.3", env={
        "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
        "CI_TEST_USER": auth_tls_registry.username, "CI_TEST_PASS": password})
    assert proc.returncode == 0, proc.stderr

    values = github_outputs(out.read_text())
    assert values["version"] == ["1.2.3"]
    (digest,) = values["digest"]
    assert digest.startswith("sha256:")
    refs = [f"{r.host}/{repo}:{t}" for r in (plain_registry, auth_tls_registry) for t in ("1.2.3", "1.2", "1", "latest")]
    assert sorted(values["tags"]) == sorted(refs)
    assert re.search(r"^version<<ghadelimiter_[0-9a-f]{32}$", out.read_text(), re.M)
    for reg in (plain_registry, auth_tls_registry):
        assert reg.manifest_digest(repo, "latest") == digest

    table = summary.read_text()
    assert "| Registry | Reference | Digest | Status |" in table
    for ref in refs:
        assert f"`{ref}`" in table
    assert "Released **1.2.3**" in table

    lines = proc.stderr.splitlines()
    assert lines.count("::group::build output") == 1
    assert sum(1 for l in lines if l.startswith("::group::push to ")) >= 1
    assert sum(1 for l in lines if l.startswith("::group::")) == lines.count("::endgroup::")
    assert_no_injected_command(proc.stderr, proc.stdout)
    # shown, harmlessly, as a log line of its build step
    assert re.search(r"^  \| .*> ::error title=injected::from the build$", proc.stderr, re.M), proc.stderr
    # The secret: announced with ::add-mask:: before anything else, nowhere else.
    mask = f"::add-mask::{password}"
    assert mask in lines and lines.index(mask) < lines.index("::group::build output")
    assert all(password not in l for l in lines if l != mask)
    assert password not in proc.stdout + out.read_text() + table


def test_gitlab_ci_step(tmp_path, docker_engine, plain_registry, repo):
    config = project(tmp_path, [block("plain", plain_registry, repo)])
    dotenv = tmp_path / "reports" / "release.env"
    proc = run(config, "build-push", "2.0.0", "--dotenv", str(dotenv), env={"GITLAB_CI": "true"})
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines())
    assert values["RELEASE_VERSION"] == "2.0.0"
    assert values["RELEASE_DIGEST"] == plain_registry.manifest_digest(repo, "2.0.0")
    assert values["RELEASE_TAGS"].split(",") == [f"{plain_registry.host}/{repo}:{t}" for t in
                                                 ("2.0.0", "2.0", "2", "latest")]
    assert values["RELEASE_OK"] == "true"
    assert all(re.fullmatch(r"[A-Z_]+=\S*", line) for line in dotenv.read_text().splitlines())
    err = proc.stderr
    assert re.search(r"\x1b\[0Ksection_start:\d+:release_build\[collapsed=true\]\r\x1b\[0Kbuild output", err)
    assert re.search(r"\x1b\[0Ksection_end:\d+:release_build\r\x1b\[0K", err)
    assert re.search(r"\x1b\[0Ksection_start:\d+:release_push\r\x1b\[0Kpush to plain", err)
    assert re.search(r"\x1b\[0Ksection_end:\d+:release_push\r\x1b\[0K", err)
    assert "::group::" not in err


def test_failed_release_still_reports_and_shows_the_error_outside_any_group(
        tmp_path, docker_engine, plain_registry, make_registry, repo):
    dead = make_registry()
    dead.stop()
    config = project(tmp_path, [block("plain", plain_registry, repo), block("dead", dead, repo)],
                     retry="retry:\n  attempts: 1\n")
    out, summary, dotenv = tmp_path / "out", tmp_path / "summary", tmp_path / "release.env"
    proc = run(config, "build-push", "3.0.0", "--dotenv", str(dotenv), "--skip-preflight", env={
        "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert sum(1 for l in lines if l.startswith("::group::")) == lines.count("::endgroup::")
    assert "release incomplete" in proc.stdout
    assert "incomplete" in summary.read_text()
    assert "| dead |" in summary.read_text()
    assert "RELEASE_OK=false" in dotenv.read_text()
    values = github_outputs(out.read_text())
    assert values["version"] == ["3.0.0"]
    assert all(dead.host not in ref for ref in values["tags"])
    assert_no_injected_command(proc.stderr, proc.stdout)


def test_build_failure_closes_the_group_before_the_error(tmp_path, docker_engine, plain_registry, repo):
    config = project(tmp_path, [block("plain", plain_registry, repo)])
    dockerfile = config.parent / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + 'RUN ["/bin/busybox", "false"]\n')
    out = tmp_path / "out"
    proc = run(config, "build-push", "4.0.0", env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)})
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "::endgroup::" in lines
    error = next(i for i, l in enumerate(lines) if l.startswith("error: build failed"))
    assert error > max(i for i, l in enumerate(lines) if l == "::endgroup::")
    assert not out.exists() or out.read_text() == ""


def test_ci_build_pushes_nothing(tmp_path, docker_engine, plain_registry, repo):
    config = project(tmp_path, [block("plain", plain_registry, repo)])
    out = tmp_path / "out"
    proc = run(config, "ci", "build", env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)})
    assert proc.returncode == 0, proc.stderr
    assert "nothing pushed" in proc.stdout
    assert "::group::build output" in proc.stderr.splitlines()
    assert_no_injected_command(proc.stderr, proc.stdout)
    assert plain_registry.tags(repo) == []
    name = config.read_text().split("name: ", 1)[1].split("\n", 1)[0]
    image = docker_engine.images.get(f"{name}:ci")
    assert image.labels["org.opencontainers.image.version"] == "ci"
    docker_engine.images.remove(f"{name}:ci", force=True)
