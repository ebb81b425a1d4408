"""The per-type dispatcher (env types, Docker config fallback, anonymous), the token cache,
GitHub Actions masking, release.yml's per-type keys, and `release --help` staying light."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from pipeline import redact
from pipeline.cloud import credentials_for
from pipeline.cloud.cache import TokenCache
from pipeline.cloud.common import quiet_logs
from pipeline.config import RegistryConfig, load_config
from pipeline.credentials import Credentials
from pipeline.errors import ConfigError, UsageError


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("CI_REGISTRY", raising=False)
    redact.clear()
    yield
    redact.clear()


def reg(rtype, host, **kw) -> RegistryConfig:
    return RegistryConfig(name=kw.pop("name", rtype), type=rtype, registry=host,
                          repository=kw.pop("repository", "team/app"), **kw)


def env(tmp_path, **values) -> dict:
    return {"DOCKER_CONFIG": str(tmp_path / "docker"), "PATH": "/nonexistent", **values}


# -- env-based types ------------------------------------------------------------------------

def test_explicit_env_names_win_for_every_type(tmp_path):
    for rtype, host in (("ecr", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
                        ("gcr", "gcr.io"), ("acr", "x.azurecr.io"), ("ghcr", "ghcr.io"),
                        ("dockerhub", "docker.io"), ("gitlab", "registry.gitlab.com")):
        creds = credentials_for(reg(rtype, host, username_env="U", password_env="P"),
                                env(tmp_path, U="me", P="pw-0000"), cache=TokenCache())
        assert (creds.username, creds.password, creds.method) == ("me", "pw-0000", "env U/P")


def test_dockerhub_default_env_and_half_set(tmp_path):
    creds = credentials_for(reg("dockerhub", "docker.io"),
                            env(tmp_path, DOCKERHUB_USERNAME="me", DOCKERHUB_TOKEN="dckr_pat_0000"))
    assert (creds.username, creds.password) == ("me", "dckr_pat_0000")
    assert redact.redact("dckr_pat_0000") == "***"
    with pytest.raises(UsageError, match="DOCKERHUB_USERNAME is set but DOCKERHUB_TOKEN is not"):
        credentials_for(reg("dockerhub", "docker.io"), env(tmp_path, DOCKERHUB_USERNAME="me"))


def test_dockerhub_without_anything_is_anonymous_with_a_reason(tmp_path):
    creds = credentials_for(reg("dockerhub", "docker.io"), env(tmp_path))
    assert creds.anonymous
    assert "DOCKERHUB_USERNAME/DOCKERHUB_TOKEN are not set" in creds.describe()


def test_ghcr(tmp_path):
    creds = credentials_for(reg("ghcr", "ghcr.io"),
                            env(tmp_path, GITHUB_TOKEN="ghs_token0000", GITHUB_ACTOR="octo"))
    assert (creds.username, creds.password, creds.method) == ("octo", "ghs_token0000",
                                                              "env GITHUB_TOKEN")
    named = credentials_for(reg("ghcr", "ghcr.io", token_env="CR_PAT"),
                            env(tmp_path, CR_PAT="ghp_pat0000", GITHUB_ACTOR="octo",
                                GITHUB_TOKEN="ghs_other"))
    assert named.password == "ghp_pat0000"
    with pytest.raises(UsageError, match="CR_PAT is not set"):
        credentials_for(reg("ghcr", "ghcr.io", token_env="CR_PAT"), env(tmp_path))
    with pytest.raises(UsageError, match="GITHUB_ACTOR"):
        credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path, GH_TOKEN="gho_0000"))
    assert credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path)).anonymous


def test_gitlab_job_credentials(tmp_path):
    job = dict(CI_REGISTRY="registry.example.com:5050", CI_REGISTRY_USER="gitlab-ci-token")
    r = reg("gitlab", "registry.example.com:5050")
    creds = credentials_for(r, env(tmp_path, **job, CI_REGISTRY_PASSWORD="glcr-0000",
                                   CI_JOB_TOKEN="job-0000"))
    assert (creds.username, creds.password) == ("gitlab-ci-token", "glcr-0000")
    creds = credentials_for(r, env(tmp_path, CI_REGISTRY=job["CI_REGISTRY"], CI_JOB_TOKEN="job-0000"))
    assert (creds.username, creds.password, creds.method) == ("gitlab-ci-token", "job-0000",
                                                              "env CI_JOB_TOKEN")
    other = credentials_for(reg("gitlab", "registry.gitlab.com"),
                            env(tmp_path, **job, CI_REGISTRY_PASSWORD="glcr-0000"))
    assert other.anonymous and "CI_REGISTRY is registry.example.com:5050" in other.note


def test_generic_keeps_the_foundation_order(tmp_path):
    auth = base64.b64encode(b"bob:from-auth-config").decode()
    e = env(tmp_path, DOCKER_AUTH_CONFIG=json.dumps({"auths": {"reg.example": {"auth": auth}}}))
    creds = credentials_for(reg("generic", "reg.example"), e)
    assert (creds.username, creds.password, creds.source) == ("bob", "from-auth-config",
                                                              "DOCKER_AUTH_CONFIG")
    assert credentials_for(reg("generic", "other.example"), e).anonymous


def test_cloud_types_fall_back_to_docker_auth_config(tmp_path, monkeypatch):
    from pipeline.cloud import ecr
    monkeypatch.setattr(ecr, "_boto3", lambda: None)            # no SDK, no CLI
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    auth = base64.b64encode(b"AWS:from-gitlab-variable").decode()
    e = env(tmp_path, DOCKER_AUTH_CONFIG=json.dumps({"auths": {host: {"auth": auth}}}))
    creds = credentials_for(reg("ecr", host), e, cache=TokenCache())
    assert (creds.username, creds.password) == ("AWS", "from-gitlab-variable")


# -- the cache ------------------------------------------------------------------------------

def test_cache_rules():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    at = lambda s: datetime.fromtimestamp(now[0] + s, timezone.utc)  # noqa: E731
    cache.put("half", Credentials("x", "u", "p", expires_at=at(1000)), half_life=True)
    cache.put("margin", Credentials("x", "u", "p", expires_at=at(1000)))
    cache.put("unknown", Credentials("x", "u", "p"))
    cache.put("stale", Credentials("x", "u", "p", expires_at=at(100)))       # < margin: not kept
    assert cache.refresh_at("half") == 1500 and cache.refresh_at("margin") == 1700
    assert cache.refresh_at("unknown") == 1300 and cache.get("stale") is None
    now[0] = 1600
    assert cache.get("half") is None and cache.get("margin") is not None


# -- redaction and GitHub Actions masks -------------------------------------------------------

def test_github_actions_masks_every_secret_as_soon_as_it_is_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    credentials_for(reg("ghcr", "ghcr.io"), env(tmp_path, GITHUB_TOKEN="ghs_masked0000",
                                                 GITHUB_ACTOR="octo"))
    err = capsys.readouterr()
    assert "::add-mask::ghs_masked0000" in err.err.splitlines()
    assert err.out == ""                            # stdout stays clean for --json
    basic = base64.b64encode(b"octo:ghs_masked0000").decode()
    assert f"::add-mask::{basic}" in err.err.splitlines()


def test_quiet_logs_nests_and_restores():
    logging.disable(logging.NOTSET)
    with quiet_logs():
        with quiet_logs():
            assert logging.root.manager.disable == logging.DEBUG
        assert logging.root.manager.disable == logging.DEBUG
    assert logging.root.manager.disable == logging.NOTSET


# -- release login's pieces -------------------------------------------------------------------

def test_an_expired_token_fails_the_login_check_without_a_request():
    from pipeline.cloud.prove import prove

    creds = Credentials("ECR", "AWS", "pw-0000", method="boto3",
                        expires_at=datetime.now(timezone.utc) - timedelta(minutes=1))
    proof = prove(reg("ecr", "127.0.0.1:9", region="us-east-1"), creds)
    assert not proof.ok and "the token expired at" in proof.detail


def test_docker_config_store_auths_helpers_and_docker_hub_key(tmp_path):
    from pipeline.cloud import dockerconfig
    from tests.support.cloudstubs import CliStub

    e = env(tmp_path, PATH=str(tmp_path / "bin"))
    creds = Credentials("env", "me", "stored-pw-0000")
    where = dockerconfig.store("docker.io", creds, e)
    data = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert where == str(tmp_path / "docker" / "config.json")
    assert base64.b64decode(data["auths"]["https://index.docker.io/v1/"]["auth"]) == \
        b"me:stored-pw-0000"
    assert oct((tmp_path / "docker" / "config.json").stat().st_mode & 0o777) == "0o600"

    helper = CliStub(tmp_path / "bin", "docker-credential-pass", read_stdin=True)
    helper.on(["store"])
    data["credsStore"] = "pass"
    data["credHelpers"] = {"123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}
    (tmp_path / "docker" / "config.json").write_text(json.dumps(data))
    assert dockerconfig.store("ghcr.io", creds, e) == "docker-credential-pass"
    assert json.loads(helper.records[0]["stdin"]) == {"ServerURL": "ghcr.io", "Username": "me",
                                                     "Secret": "stored-pw-0000"}
    assert "ecr-login" in dockerconfig.store("123456789012.dkr.ecr.us-east-1.amazonaws.com",
                                             creds, e)
    assert len(helper.records) == 1


# -- release.yml ------------------------------------------------------------------------------

BASE = """\
image:
  name: myapp
registries:
"""


def load(tmp_path, registries: str, **env):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "release.yml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(registries), "  "))
    return load_config(path)


def error(tmp_path, registries: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, registries)
    return info.value


def test_per_type_keys_load(tmp_path):
    config = load(tmp_path, """\
        - name: ecr
          type: ecr
          registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
          repository: team/app
          profile: ci
          role_arn: arn:aws:iam::123456789012:role/pusher
          create_repository: true
        - name: alias
          type: ecr
          registry: ecr.internal.example:5000
          region: eu-west-1
          repository: team/app
        - name: gar
          type: gcr
          registry: europe-west1-docker.pkg.dev
          repository: proj/repo/app
          key_file: keys/sa.json
        - name: ghcr
          type: ghcr
          repository: me/app
          token_env: CR_PAT
        - name: hub
          type: dockerhub
          repository: me/app
        - name: gitlab
          type: gitlab
          repository: group/app
        """)
    ecr, alias, gar, ghcr, hub, gitlab = config.registries
    assert (ecr.profile, ecr.role_arn, ecr.create_repository) == \
        ("ci", "arn:aws:iam::123456789012:role/pusher", True)
    assert alias.region == "eu-west-1"
    assert gar.key_file == tmp_path / "keys" / "sa.json"
    assert (ghcr.registry, ghcr.token_env) == ("ghcr.io", "CR_PAT")
    assert hub.registry == "docker.io" and hub.username_env is None
    assert gitlab.registry == "registry.gitlab.com"


def test_gitlab_registry_defaults_to_ci_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("CI_REGISTRY", "gitlab.example.com:5050")
    config = load(tmp_path, "- {name: gl, type: gitlab, repository: group/app}\n")
    assert config.registries[0].registry == "gitlab.example.com:5050"


@pytest.mark.parametrize("registries, at, phrase, hint", [
    ("- {name: a, type: gcr, registry: gcr.io, repository: x, profile: ci}\n", "profile",
     "registries[0].profile applies to type ecr only (this registry is type gcr)", "type: ecr"),
    ("- {name: a, type: ecr, registry: 1.dkr.ecr.us-east-1.amazonaws.com, repository: x}\n",
     "1.dkr", "is not an Amazon ECR host: the account ID '1' is not 12 digits", "12-digit"),
    ("- {name: a, type: ecr, registry: ecr.example.com, repository: x}\n", "ecr.example",
     "'ecr.example.com' is not an Amazon ECR host: it does not have the form", "region:"),
    ("- {name: a, type: ecr, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, "
     "repository: x, region: eu-west-1}\n", "eu-west-1", "region eu-west-1 does not match", None),
    ("- {name: a, type: ecr, registry: r.example, region: useast1, repository: x}\n", "useast1",
     "'useast1' is not an AWS region name", "us-east-1"),
    ("- {name: a, type: ecr, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, "
     "repository: x, role_arn: 'arn:aws:iam::1:user/me'}\n", "'arn", "is not an IAM role ARN",
     "arn:aws:iam::"),
    ("- {name: a, type: ecr, registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com, "
     "repository: x, create_repository: 'yes'}\n", "'yes'", "must be true or false", None),
    ("- {name: a, type: generic, repository: x}\n", "{", "registries[0].registry is required",
     "dockerhub, ghcr and gitlab"),
    ("- {name: a, type: ghcr, repository: x, token_env: T, username_env: U, password_env: P}\n",
     "token_env", "token_env and password_env both give the password", None),
    ("- {name: a, type: ghcr, repository: x, token_env: 'ghp_abc def'}\n", "'ghp",
     "token_env must name an environment variable; the value looks like a secret", None),
])
def test_per_type_key_errors_are_located(tmp_path, registries, at, phrase, hint):
    err = error(tmp_path, registries)
    assert (err.line, err.col) == (4, 3 + registries.index(at)), str(err)
    assert phrase in err.message
    if hint:
        assert hint in err.hint
    assert "ghp_abc" not in str(err)             # a value that may be a secret is never echoed


def test_a_misspelled_registry_key_is_reported_once(tmp_path):
    err = error(tmp_path, "- {name: a, regsitry: r.example, repository: x}\n")
    assert "unknown key 'regsitry'" in err.message
    assert not any("registry is required" in e.message for e in err.errors)


# -- start-up cost ----------------------------------------------------------------------------

def test_help_and_config_loading_import_no_cloud_sdk(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "release.yml").write_text(BASE + "  - {name: e, type: ecr, registry: "
                                          "123456789012.dkr.ecr.us-east-1.amazonaws.com, "
                                          "repository: x}\n")
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from pipeline.cli import cli
        assert CliRunner().invoke(cli, ["--help"]).exit_code == 0
        r = CliRunner().invoke(cli, ["-c", {str(tmp_path / "release.yml")!r}, "validate"])
        assert r.exit_code == 0, r.output
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("boto3", "botocore", "google", "azure", "msal", "moto", "docker"))
        print(heavy)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
