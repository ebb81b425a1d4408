"""GHCR, GitLab and Docker Hub end to end from their CI variables, `release login`'s table and
failures, and `--docker-config` (the only way credentials reach the disk)."""

from __future__ import annotations

import base64
import json
import stat
import uuid

import pytest

from tests.support.cloudstubs import (
    assert_no_leak,
    masked,
    offline_env,
    run_release,
    write_project,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def repo():
    return f"it/env-{uuid.uuid4().hex[:8]}"


def test_ghcr_from_github_token_and_actor(tmp_path, docker_engine, make_registry, repo):
    token = "ghs_" + uuid.uuid4().hex
    reg = make_registry(auth=("octocat", token), tls=True)
    config = write_project(tmp_path, f"- name: ghcr\n  type: ghcr\n  registry: {reg.host}\n"
                                     f"  repository: {repo}\n  ca_file: {reg.ca_file}\n")
    env = offline_env(tmp_path, GITHUB_TOKEN=token, GITHUB_ACTOR="octocat", GITHUB_ACTIONS="true")
    login = run_release(config, "login", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    assert "env GITHUB_TOKEN" in login.stdout and "octocat" in login.stdout
    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    for proc in (login, push):
        assert masked(proc, token)
        assert_no_leak(proc, token, user="octocat")


def test_gitlab_registry_and_credentials_from_the_job(tmp_path, docker_engine, make_registry,
                                                      repo):
    password = "glcbt-" + uuid.uuid4().hex
    reg = make_registry(auth=("gitlab-ci-token", password), tls=True)
    # no `registry:`: a gitlab registry takes the job's CI_REGISTRY
    config = write_project(tmp_path, f"- name: gitlab\n  type: gitlab\n  repository: {repo}\n"
                                     f"  ca_file: {reg.ca_file}\n")
    env = offline_env(tmp_path, CI_REGISTRY=reg.host, CI_REGISTRY_USER="gitlab-ci-token",
                      CI_REGISTRY_PASSWORD=password, CI_JOB_TOKEN="job-token-unused-0000")
    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    assert_no_leak(push, password, "job-token-unused-0000", user="gitlab-ci-token")


def test_dockerhub_login_table_wrong_token_and_docker_config(tmp_path, docker_engine,
                                                             make_registry, plain_registry, repo):
    token = "dckr_pat_" + uuid.uuid4().hex
    reg = make_registry(auth=("hubuser", token), tls=True)
    config = write_project(tmp_path,
                           f"- name: hub\n  type: dockerhub\n  registry: {reg.host}\n"
                           f"  repository: {repo}\n  ca_file: {reg.ca_file}\n"
                           f"- name: open\n  registry: {plain_registry.host}\n"
                           f"  repository: {repo}\n")
    env = offline_env(tmp_path, DOCKERHUB_USERNAME="hubuser", DOCKERHUB_TOKEN=token)
    docker_config = tmp_path / "docker-config" / "config.json"

    login = run_release(config, "login", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    lines = login.stdout.splitlines()
    assert lines[0].split() == ["REGISTRY", "HOST", "METHOD", "IDENTITY", "EXPIRES", "STATUS"]
    hub = next(line for line in lines if line.startswith("hub "))
    assert "env DOCKERHUB_USERNAME/DOCKERHUB_TOKEN" in hub and "hubuser" in hub and \
        hub.rstrip().endswith("ok")
    assert "open: the registry asks for no authentication" in login.stdout
    assert not docker_config.exists()                  # nothing on disk unless asked

    wrong = run_release(config, "login", "hub", "--json",
                        env=dict(env, DOCKERHUB_TOKEN="dckr_pat_wrong_0000"))
    assert wrong.returncode == 1
    entry = json.loads(wrong.stdout)["registries"][0]
    assert not entry["ok"] and "refused the credentials" in entry["detail"]
    assert "DOCKERHUB_TOKEN" in entry["hint"]
    assert_no_leak(wrong, "dckr_pat_wrong_0000", user="hubuser")

    stored = run_release(config, "login", "hub", "--docker-config", env=env)
    assert stored.returncode == 0, stored.stderr + stored.stdout
    assert f"stored in {docker_config}" in stored.stdout
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    auth = json.loads(docker_config.read_text())["auths"][reg.host]["auth"]
    assert base64.b64decode(auth).decode() == f"hubuser:{token}"
    # ...and what reads the Docker config (here release itself, without the env vars) uses them
    env_without = {k: v for k, v in env.items() if not k.startswith("DOCKERHUB_")}
    again = run_release(config, "login", "hub", "--json", env=env_without)
    entry = json.loads(again.stdout)["registries"][0]
    assert entry["ok"] and entry["method"] == "Docker config", again.stdout
    for proc in (login, stored, again):
        assert_no_leak(proc, token, user="hubuser")


def test_ghcr_docker_login_wins_over_gh_token(tmp_path, docker_engine, make_registry, repo):
    pat = "ghp_" + uuid.uuid4().hex               # write:packages, from `docker login ghcr.io`
    reg = make_registry(auth=("octocat", pat), tls=True)
    config = write_project(tmp_path, f"- name: ghcr\n  type: ghcr\n  registry: {reg.host}\n"
                                     f"  repository: {repo}\n  ca_file: {reg.ca_file}\n")
    # the gh CLI's token (no write:packages): the registry refuses it
    env = offline_env(tmp_path, GH_TOKEN="gho_" + uuid.uuid4().hex, GITHUB_ACTOR="octocat")
    auth = base64.b64encode(f"octocat:{pat}".encode()).decode()
    (tmp_path / "docker-config" / "config.json").write_text(
        json.dumps({"auths": {reg.host: {"auth": auth}}}))
    login = run_release(config, "login", "--json", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    assert json.loads(login.stdout)["registries"][0]["method"] == "Docker config"
    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    for proc in (login, push):
        assert_no_leak(proc, pat, env["GH_TOKEN"], user="octocat")


def test_docker_config_through_a_symlink_and_logout(tmp_path, docker_engine, make_registry,
                                                    repo):
    token = "dckr_pat_" + uuid.uuid4().hex
    reg = make_registry(auth=("hubuser", token), tls=True)
    config = write_project(tmp_path,
                           f"- name: hub\n  type: dockerhub\n  registry: {reg.host}\n"
                           f"  repository: {repo}\n  ca_file: {reg.ca_file}\n")
    env = offline_env(tmp_path, DOCKERHUB_USERNAME="hubuser", DOCKERHUB_TOKEN=token)
    # config.json is a link into a dotfiles checkout, as many people keep it
    real = tmp_path / "dotfiles" / "docker" / "config.json"
    real.parent.mkdir(parents=True)
    real.write_text(json.dumps({"auths": {"keep.example": {"auth": "a2VlcDprZWVw"}}}))
    link = tmp_path / "docker-config" / "config.json"
    link.symlink_to(real)

    stored = run_release(config, "login", "--docker-config", env=env)
    assert stored.returncode == 0, stored.stderr + stored.stdout
    assert link.is_symlink() and link.resolve() == real.resolve()
    auths = json.loads(real.read_text())["auths"]
    assert set(auths) == {"keep.example", reg.host}
    assert base64.b64decode(auths[reg.host]["auth"]).decode() == f"hubuser:{token}"
    # the docker CLI reads it through the link
    env_without = {k: v for k, v in env.items() if not k.startswith("DOCKERHUB_")}
    again = run_release(config, "login", "--json", env=env_without)
    assert json.loads(again.stdout)["registries"][0]["method"] == "Docker config"

    out = run_release(config, "logout", env=env_without)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip() == f"hub: removed {reg.host} from {link}"
    assert link.is_symlink() and json.loads(real.read_text())["auths"] == \
        {"keep.example": {"auth": "a2VlcDprZWVw"}}
    after = run_release(config, "login", "--json", env=env_without)
    assert not json.loads(after.stdout)["registries"][0]["ok"]          # really logged out
    again = run_release(config, "logout", "hub", env=env_without)
    assert again.returncode == 0 and "hub: nothing stored for" in again.stdout
    unknown = run_release(config, "logout", "nope", env=env_without)
    assert unknown.returncode == 2 and "no registry named nope" in unknown.stderr
    for proc in (stored, again, out):
        assert_no_leak(proc, token, user="hubuser")


def test_login_config_errors_exit_2_and_every_registry_is_shown(tmp_path, plain_registry, repo):
    config = write_project(tmp_path,
                           f"- name: open\n  registry: {plain_registry.host}\n"
                           f"  repository: {repo}\n"
                           f"- name: named\n  registry: {plain_registry.host}\n"
                           f"  repository: {repo}\n  username_env: NAMED_USER\n"
                           f"  password_env: NAMED_PASS\n")
    login = run_release(config, "login", env=offline_env(tmp_path))
    assert login.returncode == 2, login.stdout + login.stderr
    assert "open: the registry asks for no authentication" in login.stdout
    assert "environment variables NAMED_USER and NAMED_PASS are not set" in login.stdout
