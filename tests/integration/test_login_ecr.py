"""ECR end to end: `release login` and `release build-push` with credentials from moto's ECR API
(boto3), the aws CLI (stub) and a Docker credential helper (stub), pushed for real to a local
registry that accepts exactly those credentials; and the errors a user meets."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.cloudstubs import (
    CliStub,
    MotoServer,
    assert_no_leak,
    hide_modules,
    masked,
    offline_env,
    run_release,
    write_project,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto():
    server = MotoServer().start()
    yield server
    server.stop()


def ecr_entry(reg, repo: str, *, extra: str = "") -> str:
    # A local registry standing in for ECR: `region:` makes the adapter treat its host as an
    # alias of an ECR registry in us-east-1 (an ECR host name would not resolve here).
    return (f"- name: ecr\n  type: ecr\n  registry: {reg.host}\n  region: us-east-1\n"
            f"  repository: {repo}\n  ca_file: {reg.ca_file}\n{extra}")


@pytest.fixture
def repo():
    return f"it/ecr-{uuid.uuid4().hex[:8]}"


def test_boto3_token_from_moto_logs_in_creates_the_repository_and_pushes(
        tmp_path, docker_engine, make_registry, moto, repo):
    reg = make_registry(auth=("AWS", moto.token_password), tls=True)
    config = write_project(tmp_path, ecr_entry(reg, repo, extra="  create_repository: true\n"))
    env = offline_env(tmp_path, **moto.env(), GITHUB_ACTIONS="true")

    login = run_release(config, "login", "--json", env=env)
    assert login.returncode == 0, login.stderr + login.stdout
    entry = json.loads(login.stdout)["registries"][0]
    assert (entry["ok"], entry["method"], entry["identity"]) == (True, "boto3", "AWS")
    expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=11) < expires - datetime.now(timezone.utc) <= timedelta(hours=12)
    assert masked(login, moto.token_password)
    assert_no_leak(login, moto.token_password, user="AWS")

    push = run_release(config, "build-push", "1.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    report = json.loads(push.stdout)
    assert {r["status"] for r in report["results"]} == {"pushed"}
    assert reg.tags(repo) == sorted(["1.0.0", "1.0", "1", "latest"])
    assert reg.manifest_digest(repo, "1.0.0") == report["digest"]
    repos = moto.client().describe_repositories(repositoryNames=[repo])["repositories"]
    assert repos[0]["repositoryName"] == repo
    assert f"created ECR repository {repo}" in push.stderr
    assert_no_leak(push, moto.token_password, user="AWS")


def test_aws_cli_fallback_without_boto3(tmp_path, docker_engine, make_registry, repo):
    password = "cli-ecr-" + uuid.uuid4().hex
    reg = make_registry(auth=("AWS", password), tls=True)
    aws = CliStub(tmp_path / "bin", "aws")
    aws.on(["ecr", "get-login-password"], stdout=password + "\n")
    aws.on(["ecr", "describe-repositories"], exit=254,
           stderr="An error occurred (RepositoryNotFoundException) when calling the "
                  "DescribeRepositories operation: The repository does not exist\n")
    aws.on(["ecr", "create-repository"], stdout='{"repository": {}}\n')
    config = write_project(tmp_path, ecr_entry(reg, repo, extra="  create_repository: true\n"))
    env = offline_env(tmp_path, tmp_path / "bin", PYTHONPATH=hide_modules(tmp_path, "boto3"))

    push = run_release(config, "build-push", "2.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["2.0.0", "2.0", "2", "latest"])
    assert ["ecr", "get-login-password", "--region", "us-east-1"] in aws.calls
    assert ["ecr", "create-repository", "--repository-name", repo, "--output", "json",
            "--region", "us-east-1"] in aws.calls
    assert_no_leak(push, password, user="AWS")

    login = run_release(config, "login", env=env)
    assert login.returncode == 0, login.stderr
    assert "aws CLI" in login.stdout and "credentials accepted" in login.stdout
    assert_no_leak(login, password, user="AWS")


def test_credential_helper_when_there_are_no_aws_credentials(tmp_path, docker_engine,
                                                             make_registry, repo):
    password = "helper-ecr-" + uuid.uuid4().hex
    reg = make_registry(auth=("AWS", password), tls=True)
    helper = CliStub(tmp_path / "bin", "docker-credential-fakeecr", read_stdin=True)
    helper.on(["get"], stdout=json.dumps({"ServerURL": reg.host, "Username": "AWS",
                                          "Secret": password}))
    config = write_project(tmp_path, ecr_entry(reg, repo))
    env = offline_env(tmp_path, tmp_path / "bin")
    (tmp_path / "docker-config" / "config.json").write_text(
        json.dumps({"credHelpers": {reg.host: "fakeecr"}}))

    push = run_release(config, "build-push", "3.0.0", "--json", env=env)
    assert push.returncode == 0, push.stderr + push.stdout
    assert reg.tags(repo) == sorted(["3.0.0", "3.0", "3", "latest"])
    login = run_release(config, "login", "--json", env=env)
    entry = json.loads(login.stdout)["registries"][0]
    assert entry["ok"] and entry["method"] == "credential helper docker-credential-fakeecr"
    assert_no_leak(push, password, user="AWS")
    assert_no_leak(login, password, user="AWS")


def test_errors_a_user_meets(tmp_path, docker_engine, make_registry, repo):
    reg = make_registry(auth=("AWS", "never-used-0000"), tls=True)
    config = write_project(tmp_path, ecr_entry(reg, repo))
    env = offline_env(tmp_path)

    # no AWS credentials anywhere: a configuration error, exit 2 for login as for build-push,
    # which stops before any work
    login = run_release(config, "login", env=env)
    assert login.returncode == 2
    assert "no AWS credentials found" in login.stdout and "AWS_ACCESS_KEY_ID" in login.stdout
    push = run_release(config, "build-push", "1.0.0", env=env)
    assert push.returncode == 2 and "no AWS credentials found" in push.stderr
    assert "building" not in push.stderr

    # the extra is not installed and there is no aws CLI
    hidden = dict(env, PYTHONPATH=hide_modules(tmp_path, "boto3"))
    login = run_release(config, "login", "--json", env=hidden)
    entry = json.loads(login.stdout)["registries"][0]
    assert not entry["ok"] and "boto3 is not installed" in entry["detail"]
    assert "pip install 'release-pipeline[aws]'" in entry["hint"]

    # a host that is no ECR host form, without region:
    bad = write_project(tmp_path / "bad", "- name: ecr\n  type: ecr\n  registry: "
                                          "123456789012.dkr.ecr.us-east-1.amazon.com\n"
                                          "  repository: team/app\n")
    result = run_release(bad, "login", env=env)
    assert result.returncode == 2
    assert "release.yml:7:15: registries[0].registry '123456789012.dkr.ecr.us-east-1.amazon.com' " \
           "is not an Amazon ECR host: 'amazon.com' is not an ECR domain" in result.stderr
