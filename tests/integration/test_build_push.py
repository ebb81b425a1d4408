"""`release build-push` end to end: real engine, real registries, checked through the registry API."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from tests.support.release_cli import (
    RELEASE,
    image_name,
    registry_block,
    run_release,
    write_release,
)

pytestmark = pytest.mark.integration

@pytest.fixture
def repo():
    return f"it/app-{uuid.uuid4().hex[:8]}"


def assert_no_secret(proc, secret: str):
    assert secret not in proc.stdout
    assert secret not in proc.stderr


def blob_sizes(reg, repo: str, tag: str) -> list[int]:
    """The sizes of the config and layers the manifest under `tag` references (registry API)."""
    body = reg.manifest(repo, tag).json()
    return [body["config"]["size"], *[layer["size"] for layer in body["layers"]]]


def test_release_to_two_registries_same_digest_everywhere(tmp_path, docker_engine, plain_registry,
                                                          auth_tls_registry, auth_env, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      registry_block("secure", auth_tls_registry, repo, with_auth=True)])
    proc = run_release(config, "build-push", "1.2.3", "--json", env=auth_env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    digest = report["digest"]
    assert digest.startswith("sha256:")
    assert report["tags"] == ["1.2.3", "1.2", "1", "latest"]
    for reg in (plain_registry, auth_tls_registry):
        assert sorted(reg.tags(repo)) == sorted(["1.2.3", "1.2", "1", "latest"])
        for tag in report["tags"]:
            assert reg.manifest_digest(repo, tag) == digest
    assert {r["status"] for r in report["results"]} == {"pushed"}
    assert len(report["results"]) == 8
    assert_no_secret(proc, auth_tls_registry.password)
    # Each registry was sent every blob of the image, once: the bytes that went out are the
    # sizes of the blobs its manifest references, as the registry itself reports them.
    assert list(report["registries"]) == ["plain", "secure"]
    for name, reg in (("plain", plain_registry), ("secure", auth_tls_registry)):
        sizes = blob_sizes(reg, repo, "1.2.3")
        assert report["registries"][name] == {"bytes_sent": sum(sizes), "blobs_sent": len(sizes),
                                              "blobs_present": 0, "blobs_mounted": 0}
        assert sum(sizes) > 0

    # The built image carries the OCI labels under the user's.
    labels = docker_engine.images.get(report["image_id"]).labels
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert "org.opencontainers.image.created" in labels

    # Re-running after success changes nothing.
    again = run_release(config, "build-push", "1.2.3", "--json", "--no-build", env=auth_env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["digest"] == digest
    assert {r["status"] for r in second["results"]} == {"already there"}
    assert {name: r["bytes_sent"] for name, r in second["registries"].items()} == \
        {"plain": 0, "secure": 0}
    assert_no_secret(again, auth_tls_registry.password)
    table = run_release(config, "build-push", "1.2.3", "--no-build", env=auth_env)
    assert table.returncode == 0, table.stderr
    assert "\nsent:\n  plain   0 blobs sent (0 B), 0 already there\n" in table.stdout


def test_rebuild_rerun_keeps_the_digest(tmp_path, docker_engine, plain_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)])
    first = run_release(config, "build-push", "2.0.0", "--json")
    assert first.returncode == 0, first.stderr
    again = run_release(config, "build-push", "2.0.0", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["digest"] == json.loads(first.stdout)["digest"]
    assert {r["status"] for r in json.loads(again.stdout)["results"]} == {"already there"}


def test_prerelease_pushes_no_floating_tags(tmp_path, docker_engine, plain_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)])
    proc = run_release(config, "build-push", "1.3.0-rc.1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tags"] == ["1.3.0-rc.1"]
    assert plain_registry.tags(repo) == ["1.3.0-rc.1"]


def test_wrong_password_fails_fast_without_retries(tmp_path, docker_engine, plain_registry,
                                                   auth_tls_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      registry_block("secure", auth_tls_registry, repo, with_auth=True)],
                           retry="retry:\n  attempts: 5\n  max_delay: 30\n")
    bad = "wrong-password-123456"
    env = {"TEST_REG_USER": auth_tls_registry.username, "TEST_REG_PASS": bad}
    # The preflight proves every registry's credentials before the build: nothing is built
    # or pushed anywhere, and the message names the registry and where its credentials came from.
    start = time.monotonic()
    proc = run_release(config, "build-push", "1.2.3", env=env)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 of 2 registries failed the check before the build, so nothing was built or " \
           "pushed" in proc.stderr
    assert "[secure] " in proc.stderr and "env TEST_REG_USER/TEST_REG_PASS" in proc.stderr
    assert "building" not in proc.stderr
    assert elapsed < 30
    assert_no_secret(proc, bad)
    assert plain_registry.tags(repo) == [] and auth_tls_registry.tags(repo) == []

    # Without the preflight the push itself fails fast (auth errors are never retried).
    start = time.monotonic()
    proc = run_release(config, "build-push", "1.2.3", "--skip-preflight", env=env)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "retrying" not in proc.stderr
    assert "TEST_REG_USER/TEST_REG_PASS" in proc.stdout  # names the source of the credentials
    assert elapsed < 60  # five attempts with backoff up to 30 s would take longer
    assert_no_secret(proc, bad)
    # The immutable tag reached the plain registry, but no floating tag moved anywhere.
    assert plain_registry.tags(repo) == ["1.2.3"]
    assert auth_tls_registry.tags(repo) == []


def test_registry_down_then_back_completes_on_rerun(tmp_path, docker_engine, plain_registry,
                                                    make_registry, repo):
    flaky = make_registry()
    flaky.stop()
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo),
                                      registry_block("flaky", flaky, repo)],
                           retry="retry:\n  attempts: 2\n  max_delay: 1\n")
    early = run_release(config, "build-push", "3.1.4")      # found before the build
    assert early.returncode == 1
    assert "[flaky] " in early.stderr and "nothing was built or pushed" in early.stderr
    assert plain_registry.tags(repo) == []
    proc = run_release(config, "build-push", "3.1.4", "--skip-preflight")
    assert proc.returncode == 1
    assert "flaky" in proc.stdout
    assert "retrying" in proc.stderr  # a refused connection is transient
    assert plain_registry.tags(repo) == ["3.1.4"]  # no floating tag moved

    flaky.restart()
    again = run_release(config, "build-push", "3.1.4", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    for reg in (plain_registry, flaky):
        assert sorted(reg.tags(repo)) == ["3", "3.1", "3.1.4", "latest"]
        assert {reg.manifest_digest(repo, t) for t in report["tags"]} == {report["digest"]}


def test_no_build_pushes_the_local_image_and_dry_run_touches_nothing(tmp_path, docker_engine,
                                                                    plain_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)])
    missing = run_release(config, "build-push", "4.0.0", "--no-build")
    assert missing.returncode == 2
    assert "not found" in missing.stderr

    dry = run_release(config, "build-push", "4.0.0", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["registries"]["plain"][0] == f"{plain_registry.host}/{repo}:4.0.0"
    assert plain_registry.tags(repo) == []

    image = docker_engine.images.build(path=str(tmp_path / "app"), rm=True)[0]
    image.tag(image_name(config), "4.0.0")
    proc = run_release(config, "build-push", "4.0.0", "--no-build", "--json")
    assert proc.returncode == 0, proc.stderr
    assert plain_registry.manifest_digest(repo, "latest") == json.loads(proc.stdout)["digest"]


def test_build_failure_exits_1_with_the_failing_step(tmp_path, docker_engine, plain_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)])
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\nCOPY does-not-exist /x\n")
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 1
    assert "build failed" in proc.stderr
    assert "does-not-exist" in proc.stderr
    assert plain_registry.tags(repo) == []


def test_bad_input_exit_2_names_the_line_and_touches_nothing(tmp_path, plain_registry, repo):
    config = write_release(tmp_path, [registry_block("plain", plain_registry, repo)])
    text = config.read_text().replace("  context: app\n", "  context: app\n  dockerfil: Dockerfile\n")
    config.write_text(text)
    proc = run_release(config, "build-push", "1.0.0")
    assert proc.returncode == 2
    assert "release.yml:4:3" in proc.stderr
    assert "dockerfile" in proc.stderr  # the did-you-mean hint
    assert plain_registry.tags(repo) == []


def test_bad_version_and_missing_env_are_usage_errors(tmp_path, plain_registry, auth_tls_registry, repo):
    config = write_release(tmp_path, [registry_block("secure", auth_tls_registry, repo, with_auth=True)])
    bad_version = run_release(config, "build-push", "1.2")
    assert bad_version.returncode == 2
    assert "1.2.0" in bad_version.stderr  # says what is accepted
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_REG_USER", "TEST_REG_PASS")}
    proc = subprocess.run([*RELEASE, "-c", str(config), "build-push", "1.0.0"], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "TEST_REG_USER" in proc.stderr
    assert auth_tls_registry.tags(repo) == []
